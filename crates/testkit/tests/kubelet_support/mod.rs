//! Shared by the kubelet stand-in's test binaries: a namespace with a kubelet that maps a shell
//! image to `/bin/sh`, Job and Pod builders, and waits on their status.

// Each test binary uses only some of these.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::kubelet::{Kubelet, KubeletOptions};
use vertice_testkit::namespace::TestNamespace;
use vertice_testkit::process::wait_until;

/// An image name the tests map to the machine's `/bin/sh`.
pub const SHELL_IMAGE: &str = "registry.test/vertice/shell:1.0";
/// Mapped without a tag: any tag of it runs `/bin/sh`.
pub const ANY_TAG_IMAGE: &str = "registry.test/vertice/any-tag";
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Setup {
    pub client: kube::Client,
    pub namespace: TestNamespace,
    pub kubelet: Kubelet,
}

impl Setup {
    pub async fn new(prefix: &str) -> Self {
        let control_plane = ControlPlane::shared().await.unwrap();
        let client = control_plane.admin_client().await.unwrap();
        let namespace = TestNamespace::create(&client, prefix).await.unwrap();
        let kubelet = Kubelet::start(
            &client,
            KubeletOptions::new(namespace.name())
                .image(SHELL_IMAGE, "/bin/sh")
                .image(ANY_TAG_IMAGE, "/bin/sh"),
        )
        .await
        .unwrap();
        Self {
            client,
            namespace,
            kubelet,
        }
    }

    pub fn ns(&self) -> &str {
        self.namespace.name()
    }

    /// A host folder of this test's own for mount paths (mount points missing on the host are
    /// created there by the kubelet); the test removes it when it is done.
    pub fn host_dir(&self) -> String {
        format!("/run/vertice-kubelet-test/{}", self.ns())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    pub async fn create_job(&self, job: Value) -> Job {
        let job: Job = serde_json::from_value(job).unwrap();
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .unwrap()
    }

    pub async fn create_pod(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Waits until the Job has condition `kind` = True and returns it.
    pub async fn job_condition(&self, name: &str, kind: &str) -> Job {
        let jobs = self.jobs();
        wait_until(&format!("job {name} to be {kind}"), TIMEOUT, || {
            let jobs = jobs.clone();
            async move { Ok(has_condition(&jobs.get(name).await?, kind)) }
        })
        .await
        .unwrap();
        jobs.get(name).await.unwrap()
    }

    /// Waits until the Pod's phase is `phase` and returns it.
    pub async fn pod_phase(&self, name: &str, phase: &str) -> Pod {
        let pods = self.pods();
        wait_until(&format!("pod {name} to be {phase}"), TIMEOUT, || {
            let pods = pods.clone();
            async move { Ok(phase_of(&pods.get(name).await?) == phase) }
        })
        .await
        .unwrap();
        pods.get(name).await.unwrap()
    }

    /// The Pods of a Job, oldest first.
    pub async fn job_pods(&self, job: &str) -> Vec<Pod> {
        let mut pods = self
            .pods()
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .unwrap()
            .items;
        pods.sort_by_key(|pod| pod.metadata.creation_timestamp.clone());
        pods
    }

    /// Waits until the container's log contains `text`.
    pub async fn log_contains(&self, pod: &str, container: &str, text: &str) {
        wait_until(
            &format!("{pod}/{container} to log {text:?}"),
            TIMEOUT,
            || async { Ok(self.kubelet.logs(self.ns(), pod, container).contains(text)) },
        )
        .await
        .unwrap();
    }
}

pub fn has_condition(job: &Job, kind: &str) -> bool {
    job.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .any(|condition| condition.type_ == kind && condition.status == "True")
}

pub fn condition_reason(job: &Job, kind: &str) -> String {
    job.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .find(|condition| condition.type_ == kind)
        .and_then(|condition| condition.reason.clone())
        .unwrap_or_default()
}

pub fn phase_of(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|status| status.phase.clone())
        .unwrap_or_default()
}

pub fn container_status(pod: &Pod) -> ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|statuses| statuses.first())
        .cloned()
        .unwrap()
}

/// `(exitCode, reason, message)` of the container's terminated state.
pub fn terminated(pod: &Pod) -> (i32, String, String) {
    let state = container_status(pod).state.unwrap().terminated.unwrap();
    (
        state.exit_code,
        state.reason.unwrap_or_default(),
        state.message.unwrap_or_default(),
    )
}

/// A Job running `script` under `sh -c`, restartPolicy Never, no retries unless `extra` says so.
pub fn shell_job(name: &str, script: &str, extra: Value) -> Value {
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "main",
                        "image": SHELL_IMAGE,
                        "command": ["/bin/sh", "-c", script],
                    }],
                },
            },
        },
    });
    merge(&mut job, extra);
    job
}

/// A bare Pod running `script` under `sh -c`, restartPolicy Never.
pub fn shell_pod(name: &str, script: &str, extra: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": SHELL_IMAGE,
                "command": ["/bin/sh", "-c", script],
            }],
        },
    });
    merge(&mut pod, extra);
    pod
}

/// JSON merge patch semantics, except that a one-element `containers` array merges into the
/// existing first container (the tests only ever have one).
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (Value::Array(target), Value::Array(mut patch))
            if target.len() == 1 && patch.len() == 1 && target[0].is_object() =>
        {
            merge(&mut target[0], patch.remove(0));
        }
        (target, patch) => *target = patch,
    }
}

/// Waits until the Job has a Pod not named in `known` and returns it.
pub async fn wait_for_new_job_pod(setup: &Setup, job: &str, known: &[String]) -> Pod {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let new = setup.job_pods(job).await.into_iter().find(|pod| {
            !known
                .iter()
                .any(|name| pod.metadata.name.as_ref() == Some(name))
        });
        if let Some(pod) = new {
            return pod;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} created no new pod in {TIMEOUT:?}")
}
