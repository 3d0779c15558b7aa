//! The Pod status the kubelet stand-in writes: phase, start time, IPs, the four kubelet
//! conditions and one `containerStatuses` entry per container, sent as a strategic-merge patch
//! of the `status` subresource.
//!
//! Rules of Kubernetes 1.36 kept here: a container of a `Never` Pod (and a successful one of an
//! `OnFailure` Pod) never leaves `terminated` (`ValidateContainerStateTransition`); a terminal
//! phase is never left; `podIPs[0]`/`hostIPs[0]` equal `podIP`/`hostIP`; a condition's
//! `lastTransitionTime` moves only when its status does.

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::env::POD_IP;

/// An RFC 3339 timestamp in whole seconds, as `metav1.Time` serialises.
pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How one run of a container ended.
#[derive(Debug, Clone)]
pub(crate) struct Terminated {
    pub(crate) exit_code: i32,
    pub(crate) signal: Option<i32>,
    /// `Completed`, `Error` or `StartError`.
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    pub(crate) container_id: String,
}

/// A container's current state.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
        container_id: String,
    },
    Terminated(Terminated),
}

/// One container as the status reports it.
#[derive(Debug, Clone)]
pub(crate) struct ContainerView {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) state: State,
    pub(crate) restart_count: i32,
    pub(crate) last_terminated: Option<Terminated>,
}

/// The Pod phase (`Pending | Running | Succeeded | Failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Everything the next status patch says about one Pod.
pub(crate) struct PodView {
    pub(crate) phase: Phase,
    pub(crate) start_time: String,
    pub(crate) containers: Vec<ContainerView>,
    /// The Pod-level `reason`/`message`, e.g. for an unmapped image.
    pub(crate) reason: Option<String>,
    pub(crate) message: Option<String>,
    /// type → (status, lastTransitionTime)
    transitions: BTreeMap<&'static str, (bool, String)>,
}

impl PodView {
    pub(crate) fn new(containers: Vec<ContainerView>) -> Self {
        Self {
            phase: Phase::Pending,
            start_time: now(),
            containers,
            reason: None,
            message: None,
            transitions: BTreeMap::new(),
        }
    }

    pub(crate) fn container_mut(&mut self, name: &str) -> Option<&mut ContainerView> {
        self.containers.iter_mut().find(|c| c.name == name)
    }

    /// Running while any container runs or waits to restart; once every container has
    /// terminated for good, Succeeded when all exited 0, else Failed (kubelet `getPhase`). A
    /// container that will restart is `waiting` (CrashLoopBackOff), not `terminated`.
    pub(crate) fn settle_phase(&mut self) {
        if self.phase.is_terminal() {
            return;
        }
        let any_running = self
            .containers
            .iter()
            .any(|c| matches!(c.state, State::Running { .. }));
        let all_terminated = self
            .containers
            .iter()
            .all(|c| matches!(c.state, State::Terminated(_)));
        self.phase = if all_terminated {
            let all_succeeded = self
                .containers
                .iter()
                .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
            if all_succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            }
        } else if any_running || self.phase == Phase::Running {
            Phase::Running
        } else {
            self.phase
        };
    }

    /// The strategic-merge patch body for the `status` subresource.
    pub(crate) fn patch(&mut self) -> Value {
        let started = self.phase != Phase::Pending;
        let all_running = self
            .containers
            .iter()
            .all(|c| matches!(c.state, State::Running { .. }));
        let ready = self.phase == Phase::Running && all_running;
        let terminal = self.phase.is_terminal();
        let unready: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| !matches!(c.state, State::Running { .. }))
            .map(|c| c.name.as_str())
            .collect();
        let (not_ready_reason, not_ready_message) = if terminal {
            ("PodCompleted", String::new())
        } else {
            (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        };
        let conditions = vec![
            self.condition("PodReadyToStartContainers", !terminal, "", ""),
            self.condition("Initialized", true, "", ""),
            self.condition(
                "ContainersReady",
                ready,
                not_ready_reason,
                &not_ready_message,
            ),
            self.condition("Ready", ready, not_ready_reason, &not_ready_message),
        ];
        let mut status = json!({
            "phase": self.phase.as_str(),
            "startTime": self.start_time,
            "hostIP": POD_IP,
            "hostIPs": [{ "ip": POD_IP }],
            "conditions": conditions,
            "containerStatuses": self.containers.iter().map(container_json).collect::<Vec<_>>(),
        });
        if started {
            status["podIP"] = json!(POD_IP);
            status["podIPs"] = json!([{ "ip": POD_IP }]);
        }
        if let Some(reason) = &self.reason {
            status["reason"] = json!(reason);
        }
        if let Some(message) = &self.message {
            status["message"] = json!(message);
        }
        json!({ "status": status })
    }

    fn condition(
        &mut self,
        kind: &'static str,
        status: bool,
        reason: &str,
        message: &str,
    ) -> Value {
        let time = match self.transitions.get(kind) {
            Some((previous, time)) if *previous == status => time.clone(),
            _ => {
                let time = now();
                self.transitions.insert(kind, (status, time.clone()));
                time
            }
        };
        let mut condition = json!({
            "type": kind,
            "status": if status { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": time,
        });
        if !status && !reason.is_empty() {
            condition["reason"] = json!(reason);
            if !message.is_empty() {
                condition["message"] = json!(message);
            }
        }
        condition
    }
}

fn terminated_json(terminated: &Terminated) -> Value {
    let mut value = json!({
        "exitCode": terminated.exit_code,
        "reason": terminated.reason,
        "startedAt": terminated.started_at,
        "finishedAt": terminated.finished_at,
        "containerID": terminated.container_id,
    });
    if let Some(signal) = terminated.signal {
        value["signal"] = json!(signal);
    }
    if !terminated.message.is_empty() {
        value["message"] = json!(terminated.message);
    }
    value
}

fn container_json(container: &ContainerView) -> Value {
    let (state, ready, started, container_id) = match &container.state {
        State::Waiting { reason, message } => {
            let mut waiting = json!({ "reason": reason });
            if !message.is_empty() {
                waiting["message"] = json!(message);
            }
            (json!({ "waiting": waiting }), false, false, None)
        }
        State::Running {
            started_at,
            container_id,
        } => (
            json!({ "running": { "startedAt": started_at } }),
            true,
            true,
            Some(container_id.clone()),
        ),
        State::Terminated(terminated) => (
            json!({ "terminated": terminated_json(terminated) }),
            false,
            false,
            Some(terminated.container_id.clone()),
        ),
    };
    let mut value = json!({
        "name": container.name,
        "image": container.image,
        "imageID": format!("testkit-kubelet://{}", container.image),
        "ready": ready,
        "started": started,
        "restartCount": container.restart_count,
        "state": state,
        "lastState": container
            .last_terminated
            .as_ref()
            .map(|t| json!({ "terminated": terminated_json(t) }))
            .unwrap_or_else(|| json!({})),
    });
    if let Some(id) = container_id {
        value["containerID"] = json!(id);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: State) -> ContainerView {
        ContainerView {
            name: "main".to_owned(),
            image: "img".to_owned(),
            state,
            restart_count: 0,
            last_terminated: None,
        }
    }

    fn terminated(exit_code: i32) -> State {
        State::Terminated(Terminated {
            exit_code,
            signal: None,
            reason: if exit_code == 0 { "Completed" } else { "Error" },
            message: String::new(),
            started_at: now(),
            finished_at: now(),
            container_id: "testkit-kubelet://1".to_owned(),
        })
    }

    #[test]
    fn phase_follows_the_containers() {
        let running = State::Running {
            started_at: now(),
            container_id: "x".to_owned(),
        };
        let backing_off = State::Waiting {
            reason: "CrashLoopBackOff".to_owned(),
            message: String::new(),
        };
        let cases = [
            (vec![running.clone()], Phase::Running),
            (vec![terminated(0)], Phase::Succeeded),
            (vec![terminated(0), terminated(3)], Phase::Failed),
            (vec![terminated(0), running.clone()], Phase::Running),
            (vec![terminated(0), backing_off.clone()], Phase::Pending),
        ];
        for (states, expected) in cases {
            let mut view = PodView::new(states.into_iter().map(container).collect());
            view.settle_phase();
            assert_eq!(view.phase, expected);
        }
        // Once running, a container waiting to restart keeps the Pod running.
        let mut view = PodView::new(vec![container(running), container(terminated(0))]);
        view.settle_phase();
        view.containers[0].state = backing_off;
        view.settle_phase();
        assert_eq!(view.phase, Phase::Running);
    }

    #[test]
    fn a_terminal_phase_is_never_left() {
        let mut view = PodView::new(vec![container(terminated(2))]);
        view.settle_phase();
        assert_eq!(view.phase, Phase::Failed);
        view.containers[0].state = State::Running {
            started_at: now(),
            container_id: "y".to_owned(),
        };
        view.settle_phase();
        assert_eq!(view.phase, Phase::Failed);
    }

    #[test]
    fn ready_only_while_every_container_runs() {
        let mut view = PodView::new(vec![container(State::Running {
            started_at: now(),
            container_id: "x".to_owned(),
        })]);
        view.settle_phase();
        let patch = view.patch();
        let ready = &patch["status"]["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(patch["status"]["podIP"], POD_IP);

        view.containers[0].state = terminated(0);
        view.settle_phase();
        let patch = view.patch();
        let ready = &patch["status"]["conditions"][3];
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "PodCompleted");
        assert_eq!(patch["status"]["phase"], "Succeeded");
        let state = &patch["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(state["exitCode"], 0);
        assert_eq!(state["reason"], "Completed");
    }
}
