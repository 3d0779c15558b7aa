//! At most N runs at once per project (issue 7 §3, issue 8 §3): the project is a run's
//! `projectId` (its own, else its VerticeBackup's, which the controller writes onto it as the
//! `vertice.dev/project` label before admitting it), default its namespace (`project.rs`);
//! N is `--max-concurrent-runs-per-project` (default 2).
//!
//! The BackupRequest cache says which runs are `Running`, but it lags the operator's own status
//! writes by a watch event, so two reconciles deciding at the same moment could both see a free
//! slot. [`RunQueue`] therefore also remembers, under one lock, the runs it let start in this
//! process until the cache shows them finished. Waiting runs start in creation order: a run
//! starts only if fewer runs that were created before it are waiting than there are free
//! slots. A finished run wakes the waiting runs of its project through the controller's
//! [`Trigger`] (no timer).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use vertice_core::PrimaryStore;
use vertice_core::trigger::Trigger;

use super::project::project_of;
use crate::api::BackupRequest;
use crate::api::run::RunPhase;

/// What [`RunQueue::admit`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The run holds a slot: start it.
    Start,
    /// All slots are taken: wait. The project and the runs holding its slots (sorted names).
    Wait {
        /// The project.
        project: String,
        /// The runs holding the slots, `namespace/name`.
        running: Vec<String>,
        /// The limit.
        limit: usize,
    },
}

impl Admission {
    /// The `Queued` message: which runs it waits for.
    pub fn message(&self) -> String {
        match self {
            Admission::Start => String::new(),
            Admission::Wait {
                project,
                running,
                limit,
            } => format!(
                "waiting for a free run slot in project {project:?} (at most {limit} at once): running {}",
                running.join(", ")
            ),
        }
    }
}

/// The per-project run limit of one operator process.
pub struct RunQueue {
    limit: usize,
    store: PrimaryStore<BackupRequest>,
    wake: Trigger<BackupRequest>,
    /// Runs let start here and not yet seen finished in the cache, by project.
    started: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

fn key(request: &BackupRequest) -> String {
    format!(
        "{}/{}",
        request.namespace().unwrap_or_default(),
        request.name_any()
    )
}

fn phase(request: &BackupRequest) -> RunPhase {
    request
        .status
        .as_ref()
        .map(|status| status.phase)
        .unwrap_or_default()
}

impl RunQueue {
    /// A queue allowing `limit` (at least 1) runs per project, reading `store` and waking runs
    /// through `wake`.
    pub fn new(
        limit: usize,
        store: PrimaryStore<BackupRequest>,
        wake: Trigger<BackupRequest>,
    ) -> Self {
        Self {
            limit: limit.max(1),
            store,
            wake,
            started: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether `request` may start now; if so it holds a slot until [`release`](Self::release).
    pub fn admit(&self, request: &BackupRequest) -> Admission {
        let project = project_of(request);
        let me = key(request);
        let state = self.store.state();
        let in_project: Vec<&BackupRequest> = state
            .iter()
            .filter_map(|object| object.0.as_ref().ok())
            .filter(|other| project_of(other) == project)
            .collect();
        let finished_or_gone = |name: &str| {
            in_project
                .iter()
                .find(|other| key(other) == name)
                .is_none_or(|other| phase(other).is_finished())
        };
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = started.entry(project.clone()).or_default();
        mine.retain(|name| *name == me || !finished_or_gone(name));
        let mut running: BTreeSet<String> = in_project
            .iter()
            .filter(|other| phase(other) == RunPhase::Running)
            .map(|other| key(other))
            .collect();
        running.extend(mine.iter().cloned());
        if running.contains(&me) {
            return Admission::Start;
        }
        let free = self.limit.saturating_sub(running.len());
        let my_age = (request.creation_timestamp(), me.clone());
        let older_waiting = in_project
            .iter()
            .filter(|other| phase(other) == RunPhase::Queued && key(other) != me)
            .filter(|other| (other.creation_timestamp(), key(other)) < my_age)
            .count();
        if older_waiting < free {
            mine.insert(me);
            return Admission::Start;
        }
        Admission::Wait {
            project,
            running: running.into_iter().collect(),
            limit: self.limit,
        }
    }

    /// `request` finished (or will never start): frees its slot and wakes the runs waiting in
    /// its project.
    pub fn release(&self, request: &BackupRequest) {
        let project = project_of(request);
        let me = key(request);
        {
            let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(mine) = started.get_mut(&project) {
                mine.remove(&me);
            }
        }
        for object in self.store.state() {
            if let Ok(other) = object.0.as_ref()
                && project_of(other) == project
                && matches!(phase(other), RunPhase::Queued | RunPhase::Pending)
                && key(other) != me
            {
                self.wake.reconcile(ObjectRef::from_obj(other));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use kube::core::DeserializeGuard;
    use kube::runtime::{reflector, watcher};

    use super::*;
    use crate::api::{BackupRequestSpec, BackupRequestStatus};

    fn request(
        name: &str,
        project: Option<&str>,
        phase: Option<RunPhase>,
        age: i64,
    ) -> BackupRequest {
        let mut request = BackupRequest::new(
            name,
            BackupRequestSpec {
                backup_ref: None,
                target: None,
                object_store: None,
                snapshot: None,
                storage: None,
                encryption: None,
                compression: None,
                executor: None,
                backup_name: None,
                labels: Default::default(),
                project_id: None,
                environment: None,
            },
        );
        request.metadata.namespace = Some("ns".into());
        request.metadata.creation_timestamp =
            Some(Time(Timestamp::from_second(1_700_000_000 + age).unwrap()));
        if let Some(project) = project {
            request.metadata.labels =
                Some([(labels::PROJECT.to_owned(), project.to_owned())].into());
        }
        request.status = phase.map(|phase| BackupRequestStatus {
            phase,
            ..BackupRequestStatus::default()
        });
        request
    }

    fn queue(limit: usize, objects: &[BackupRequest]) -> RunQueue {
        let (store, mut writer) = reflector::store::<DeserializeGuard<BackupRequest>>();
        for object in objects {
            writer
                .apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(object.clone()))));
        }
        let (wake, _woken) = vertice_core::trigger::channel();
        RunQueue::new(limit, store, wake)
    }

    use super::super::labels;

    #[test]
    fn a_full_project_queues_and_names_the_runs_it_waits_for() {
        let running = [
            request("a", None, Some(RunPhase::Running), 0),
            request("b", None, Some(RunPhase::Running), 1),
        ];
        let waiting = request("c", None, None, 2);
        let q = queue(
            2,
            &[running[0].clone(), running[1].clone(), waiting.clone()],
        );
        let admission = q.admit(&waiting);
        assert_eq!(
            admission,
            Admission::Wait {
                project: "ns".into(),
                running: vec!["ns/a".into(), "ns/b".into()],
                limit: 2,
            }
        );
        assert!(admission.message().contains("ns/a, ns/b"));
        // A run of another project is not held up; one already running keeps its slot.
        let other = request("d", Some("team-b"), None, 3);
        assert_eq!(
            queue(2, &[running[0].clone(), other.clone()]).admit(&other),
            Admission::Start
        );
        assert_eq!(q.admit(&running[0]), Admission::Start);
    }

    #[test]
    fn slots_taken_in_this_process_count_before_the_cache_shows_them() {
        let first = request("a", Some("p"), None, 0);
        let second = request("b", Some("p"), None, 1);
        let third = request("c", Some("p"), None, 2);
        let q = queue(2, &[first.clone(), second.clone(), third.clone()]);
        assert_eq!(q.admit(&first), Admission::Start);
        assert_eq!(q.admit(&second), Admission::Start);
        assert!(matches!(q.admit(&third), Admission::Wait { .. }));
        // Admitting again is idempotent; releasing frees the slot.
        assert_eq!(q.admit(&first), Admission::Start);
        q.release(&first);
        assert_eq!(q.admit(&third), Admission::Start);
    }

    #[test]
    fn the_project_id_field_is_the_key_whatever_the_namespace_or_label() {
        let with_id = |name: &str, id: &str, label: Option<&str>, phase, age| {
            let mut run = request(name, label, phase, age);
            run.spec.project_id = Some(id.to_owned());
            run
        };
        // Two running runs of project `shop`: one named by its field, one by its label only.
        let a = with_id("a", "shop", Some("other"), Some(RunPhase::Running), 0);
        let b = request("b", Some("shop"), Some(RunPhase::Running), 1);
        let c = with_id("c", "shop", None, None, 2);
        let d = with_id("d", "blog", Some("shop"), None, 3);
        let q = queue(2, &[a, b, c.clone(), d.clone()]);
        match q.admit(&c) {
            Admission::Wait {
                project, running, ..
            } => {
                assert_eq!(project, "shop");
                assert_eq!(running, vec!["ns/a".to_owned(), "ns/b".to_owned()]);
            }
            Admission::Start => panic!("project shop is full"),
        }
        // `d` carries the label `shop`, but its field says `blog`: the field wins.
        assert_eq!(q.admit(&d), Admission::Start);
    }

    #[test]
    fn waiting_runs_start_in_creation_order() {
        let running = request("a", None, Some(RunPhase::Running), 0);
        let older = request("b", None, Some(RunPhase::Queued), 1);
        let newer = request("c", None, Some(RunPhase::Queued), 2);
        let q = queue(2, &[running, older.clone(), newer.clone()]);
        // One free slot, and an older run waits for it.
        assert!(matches!(q.admit(&newer), Admission::Wait { .. }));
        assert_eq!(q.admit(&older), Admission::Start);
    }
}
