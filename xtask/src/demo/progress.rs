//! Following the demo's runs: the on-demand BackupRequest, the first BackupRequest the schedule
//! creates and the RestoreRequest — what phase each is in, whether the demo is done or failed,
//! and the lines that describe them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::ListParams;
use vertice_backup::api::run::RunPhase;
use vertice_backup::api::{BackupRequest, RestoreRequest};

/// The label a schedule sets on the BackupRequests it creates (the policy's name).
const POLICY_LABEL: &str = "backup.vertice.dev/policy";
/// The annotation a schedule sets on them (the slot's time, RFC 3339).
const SCHEDULED_TIME_ANNOTATION: &str = "backup.vertice.dev/scheduled-time";

/// The names of what the demo waits for.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The namespace.
    pub namespace: String,
    /// The VerticeBackup.
    pub policy: String,
    /// The on-demand BackupRequest.
    pub on_demand: String,
    /// The RestoreRequest.
    pub restore: String,
    /// The project backup's BackupRequest (a dump and a bucket copy).
    pub project: String,
}

/// The watched objects as last read.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The on-demand BackupRequest, once it exists.
    pub on_demand: Option<BackupRequest>,
    /// The earliest BackupRequest the schedule created, once there is one.
    pub first_scheduled: Option<BackupRequest>,
    /// How many BackupRequests the schedule created so far.
    pub scheduled_count: usize,
    /// The RestoreRequest, once it exists.
    pub restore: Option<RestoreRequest>,
    /// The project backup, once it exists.
    pub project: Option<BackupRequest>,
}

/// Where the demo stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Something is not finished yet.
    Waiting,
    /// All three succeeded.
    Succeeded,
    /// This object (`Kind/name`) failed.
    Failed(String),
}

impl Snapshot {
    /// Reads the watched objects.
    ///
    /// Errors: the apiserver did not answer.
    pub async fn read(client: &kube::Client, watched: &Watched) -> anyhow::Result<Self> {
        let requests: Api<BackupRequest> = Api::namespaced(client.clone(), &watched.namespace);
        let restores: Api<RestoreRequest> = Api::namespaced(client.clone(), &watched.namespace);
        let on_demand = requests.get_opt(&watched.on_demand).await?;
        let listed = requests
            .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={}", watched.policy)))
            .await?;
        let mut scheduled: Vec<_> = listed
            .items
            .into_iter()
            .filter(|request| {
                request.metadata.name.as_deref() != Some(watched.on_demand.as_str())
                    && request
                        .metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(SCHEDULED_TIME_ANNOTATION))
            })
            .collect();
        // RFC 3339 times of one zone sort as text; the name breaks ties deterministically.
        scheduled.sort_by_key(|request| (scheduled_time(request), request.metadata.name.clone()));
        let scheduled_count = scheduled.len();
        Ok(Self {
            on_demand,
            first_scheduled: scheduled.into_iter().next(),
            scheduled_count,
            restore: restores.get_opt(&watched.restore).await?,
            project: requests.get_opt(&watched.project).await?,
        })
    }

    /// Done when all four succeeded; failed as soon as one of them failed.
    pub fn outcome(&self) -> Outcome {
        let phases = [
            (
                "BackupRequest",
                self.on_demand
                    .as_ref()
                    .map(|r| (name(&r.metadata), br_phase(r))),
            ),
            (
                "BackupRequest",
                self.first_scheduled
                    .as_ref()
                    .map(|r| (name(&r.metadata), br_phase(r))),
            ),
            (
                "RestoreRequest",
                self.restore
                    .as_ref()
                    .map(|r| (name(&r.metadata), rr_phase(r))),
            ),
            (
                "BackupRequest",
                self.project
                    .as_ref()
                    .map(|r| (name(&r.metadata), br_phase(r))),
            ),
        ];
        if let Some((kind, Some((name, _)))) = phases
            .iter()
            .find(|(_, state)| matches!(state, Some((_, RunPhase::Failed))))
        {
            return Outcome::Failed(format!("{kind}/{name}"));
        }
        if phases
            .iter()
            .all(|(_, state)| matches!(state, Some((_, RunPhase::Succeeded))))
        {
            Outcome::Succeeded
        } else {
            Outcome::Waiting
        }
    }

    /// One line per watched object: its phase and, while not succeeded, its Ready condition.
    pub fn lines(&self, watched: &Watched) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.on_demand {
            Some(request) => lines.push(run_line(
                &format!("BackupRequest/{}", name(&request.metadata)),
                br_phase(request),
                conditions_of_br(request),
            )),
            None => lines.push(format!("BackupRequest/{}: not found", watched.on_demand)),
        }
        match &self.first_scheduled {
            Some(request) => lines.push(run_line(
                &format!(
                    "BackupRequest/{} (first of {} scheduled)",
                    name(&request.metadata),
                    self.scheduled_count
                ),
                br_phase(request),
                conditions_of_br(request),
            )),
            None => lines.push(format!(
                "VerticeBackup/{}: no scheduled run yet (the schedule fires at the next minute)",
                watched.policy
            )),
        }
        match &self.restore {
            Some(restore) => lines.push(run_line(
                &format!("RestoreRequest/{}", name(&restore.metadata)),
                rr_phase(restore),
                conditions_of_rr(restore),
            )),
            None => lines.push(format!("RestoreRequest/{}: not found", watched.restore)),
        }
        match &self.project {
            Some(request) => lines.push(run_line(
                &format!("BackupRequest/{} (project backup)", name(&request.metadata)),
                br_phase(request),
                conditions_of_br(request),
            )),
            None => lines.push(format!("BackupRequest/{}: not found", watched.project)),
        }
        lines
    }
}

fn name(metadata: &kube::api::ObjectMeta) -> String {
    metadata.name.clone().unwrap_or_default()
}

fn scheduled_time(request: &BackupRequest) -> String {
    request
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCHEDULED_TIME_ANNOTATION))
        .cloned()
        .unwrap_or_default()
}

/// The phase of a BackupRequest (`Pending` until the controller wrote a status).
pub fn br_phase(request: &BackupRequest) -> RunPhase {
    request.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The phase of a RestoreRequest (`Pending` until the controller wrote a status).
pub fn rr_phase(restore: &RestoreRequest) -> RunPhase {
    restore.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The conditions of a BackupRequest (none before its first status).
pub fn conditions_of_br(request: &BackupRequest) -> &[Condition] {
    request
        .status
        .as_ref()
        .map_or(&[], |s| s.conditions.as_slice())
}

/// The conditions of a RestoreRequest (none before its first status).
pub fn conditions_of_rr(restore: &RestoreRequest) -> &[Condition] {
    restore
        .status
        .as_ref()
        .map_or(&[], |s| s.conditions.as_slice())
}

fn run_line(what: &str, phase: RunPhase, conditions: &[Condition]) -> String {
    let mut line = format!("{what}: {phase:?}");
    if phase != RunPhase::Succeeded
        && let Some(ready) = conditions.iter().find(|c| c.type_ == "Ready")
    {
        line.push_str(&format!(" ({}: {})", ready.reason, ready.message));
    }
    line
}

/// Every condition, one indented line each, for a failure report.
pub fn condition_lines(conditions: &[Condition]) -> Vec<String> {
    if conditions.is_empty() {
        return vec!["    (no conditions)".to_owned()];
    }
    conditions
        .iter()
        .map(|c| format!("    {}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .collect()
}

/// `bytes` in binary units, e.g. `12.3 KiB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use vertice_backup::api::{BackupRequestStatus, RestoreRequestStatus};

    use super::*;

    fn br(name: &str, phase: Option<RunPhase>) -> BackupRequest {
        let mut request: BackupRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "BackupRequest",
            "metadata": {"name": name},
            "spec": {"backupRef": {"name": "p"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        request.status = phase.map(|phase| BackupRequestStatus {
            phase,
            ..BackupRequestStatus::default()
        });
        request
    }

    fn rr(phase: Option<RunPhase>) -> RestoreRequest {
        let mut restore: RestoreRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "RestoreRequest",
            "metadata": {"name": "r"},
            "spec": {
                "source": {"backupRequestRef": {"name": "b"}},
                "target": {"engine": "postgres", "database": "x"}
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        restore.status = phase.map(|phase| RestoreRequestStatus {
            phase,
            ..RestoreRequestStatus::default()
        });
        restore
    }

    /// The three single-database runs as given, and a succeeded project backup.
    fn snapshot(
        on_demand: Option<Option<RunPhase>>,
        scheduled: Option<Option<RunPhase>>,
        restore: Option<Option<RunPhase>>,
    ) -> Snapshot {
        Snapshot {
            on_demand: on_demand.map(|phase| br("od", phase)),
            first_scheduled: scheduled.map(|phase| br("p-1", phase)),
            scheduled_count: usize::from(scheduled.is_some()),
            restore: restore.map(rr),
            project: Some(br("proj", Some(RunPhase::Succeeded))),
        }
    }

    #[test]
    fn the_project_backup_is_waited_for_and_its_failure_named() {
        let ok = Some(Some(RunPhase::Succeeded));
        let mut missing = snapshot(ok, ok, ok);
        missing.project = None;
        assert_eq!(missing.outcome(), Outcome::Waiting);
        let mut running = snapshot(ok, ok, ok);
        running.project = Some(br("proj", Some(RunPhase::Running)));
        assert_eq!(running.outcome(), Outcome::Waiting);
        let mut failed = snapshot(ok, ok, ok);
        failed.project = Some(br("proj", Some(RunPhase::Failed)));
        assert_eq!(
            failed.outcome(),
            Outcome::Failed("BackupRequest/proj".into())
        );
    }

    #[test]
    fn done_only_when_all_four_succeeded() {
        let ok = Some(Some(RunPhase::Succeeded));
        assert_eq!(snapshot(ok, ok, ok).outcome(), Outcome::Succeeded);
        for waiting in [
            snapshot(None, ok, ok),
            snapshot(ok, None, ok),
            snapshot(ok, ok, None),
            snapshot(Some(None), ok, ok),
            snapshot(ok, Some(Some(RunPhase::Running)), ok),
            snapshot(ok, ok, Some(Some(RunPhase::Queued))),
            snapshot(None, None, None),
        ] {
            assert_eq!(waiting.outcome(), Outcome::Waiting, "{waiting:?}");
        }
    }

    #[test]
    fn any_failure_ends_the_wait_and_names_the_object() {
        let ok = Some(Some(RunPhase::Succeeded));
        let failed = Some(Some(RunPhase::Failed));
        assert_eq!(
            snapshot(failed, None, None).outcome(),
            Outcome::Failed("BackupRequest/od".into())
        );
        assert_eq!(
            snapshot(ok, failed, ok).outcome(),
            Outcome::Failed("BackupRequest/p-1".into())
        );
        assert_eq!(
            snapshot(Some(Some(RunPhase::Running)), None, failed).outcome(),
            Outcome::Failed("RestoreRequest/r".into())
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
