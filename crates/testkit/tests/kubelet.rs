//! The kubelet stand-in against the REAL control plane (etcd, kube-apiserver and
//! kube-controller-manager with the job controller): Jobs run to completion, env and volumes
//! reach the process (and only the process), podFailurePolicy and backoffLimit are applied by the
//! real job controller to the exit codes the stand-in reports, termination messages reach the
//! Pod status, and deleting a Pod stops its process with SIGTERM, then SIGKILL.

// Helpers outside `#[test]` functions unwrap too: a panic is the test failure we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::{Value, json};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::kubelet::{Kubelet, KubeletOptions};
use vertice_testkit::namespace::TestNamespace;
use vertice_testkit::process::wait_until;

/// An image name the tests map to the machine's `/bin/sh`.
const SHELL_IMAGE: &str = "registry.test/vertice/shell:1.0";
/// Mapped without a tag: any tag of it runs `/bin/sh`.
const ANY_TAG_IMAGE: &str = "registry.test/vertice/any-tag";
const TIMEOUT: Duration = Duration::from_secs(60);

struct Setup {
    client: kube::Client,
    namespace: TestNamespace,
    kubelet: Kubelet,
}

impl Setup {
    async fn new(prefix: &str) -> Self {
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

    fn ns(&self) -> &str {
        self.namespace.name()
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    async fn create_job(&self, job: Value) -> Job {
        let job: Job = serde_json::from_value(job).unwrap();
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .unwrap()
    }

    async fn create_pod(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Waits until the Job has condition `kind` = True and returns it.
    async fn job_condition(&self, name: &str, kind: &str) -> Job {
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
    async fn pod_phase(&self, name: &str, phase: &str) -> Pod {
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
    async fn job_pods(&self, job: &str) -> Vec<Pod> {
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
    async fn log_contains(&self, pod: &str, container: &str, text: &str) {
        wait_until(
            &format!("{pod}/{container} to log {text:?}"),
            TIMEOUT,
            || async { Ok(self.kubelet.logs(self.ns(), pod, container).contains(text)) },
        )
        .await
        .unwrap();
    }
}

fn has_condition(job: &Job, kind: &str) -> bool {
    job.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .any(|condition| condition.type_ == kind && condition.status == "True")
}

fn condition_reason(job: &Job, kind: &str) -> String {
    job.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .find(|condition| condition.type_ == kind)
        .and_then(|condition| condition.reason.clone())
        .unwrap_or_default()
}

fn phase_of(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|status| status.phase.clone())
        .unwrap_or_default()
}

fn container_status(pod: &Pod) -> ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|statuses| statuses.first())
        .cloned()
        .unwrap()
}

/// `(exitCode, reason, message)` of the container's terminated state.
fn terminated(pod: &Pod) -> (i32, String, String) {
    let state = container_status(pod).state.unwrap().terminated.unwrap();
    (
        state.exit_code,
        state.reason.unwrap_or_default(),
        state.message.unwrap_or_default(),
    )
}

/// A Job running `script` under `sh -c`, restartPolicy Never, no retries unless `extra` says so.
fn shell_job(name: &str, script: &str, extra: Value) -> Value {
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
fn shell_pod(name: &str, script: &str, extra: Value) -> Value {
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

#[tokio::test]
async fn jobs_run_to_completion() {
    let setup = Setup::new("kubelet-complete").await;
    setup
        .create_job(shell_job(
            "one",
            "echo hello from $0; echo to stderr >&2",
            json!({}),
        ))
        .await;
    // Several pods, two at a time: the job controller counts each success.
    setup
        .create_job(shell_job(
            "three",
            "echo index $JOB_COMPLETION_INDEX",
            json!({ "spec": { "completions": 3, "parallelism": 2, "completionMode": "Indexed" } }),
        ))
        .await;

    let job = setup.job_condition("one", "Complete").await;
    let status = job.status.unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.failed.unwrap_or(0), 0);
    let pods = setup.job_pods("one").await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(phase_of(pod), "Succeeded");
    assert_eq!(terminated(pod).0, 0);
    assert_eq!(terminated(pod).1, "Completed");
    let pod_status = pod.status.as_ref().unwrap();
    assert!(pod_status.start_time.is_some());
    assert_eq!(pod_status.pod_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        pod.spec.as_ref().unwrap().node_name.is_none(),
        "pods stay unbound"
    );
    let name = pod.metadata.name.as_deref().unwrap();
    let logs = setup.kubelet.logs(setup.ns(), name, "main");
    // `command[0]` is replaced by the mapped binary, so `$0` is the real /bin/sh.
    assert!(logs.contains("hello from /bin/sh"), "{logs}");
    assert!(logs.contains("to stderr"), "{logs}");

    let job = setup.job_condition("three", "Complete").await;
    assert_eq!(job.status.unwrap().succeeded, Some(3));
    let mut indexes = Vec::new();
    for pod in setup.job_pods("three").await {
        let logs = setup
            .kubelet
            .logs(setup.ns(), pod.metadata.name.as_deref().unwrap(), "main");
        indexes.push(logs.trim().to_owned());
    }
    indexes.sort();
    assert_eq!(indexes, ["index 0", "index 1", "index 2"]);
}

#[tokio::test]
async fn env_from_secrets_config_maps_and_field_refs_reaches_the_process() {
    let setup = Setup::new("kubelet-env").await;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("db".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("password".to_owned(), ByteString(b"pa ss=w$rd".to_vec())),
            ("user".to_owned(), ByteString(b"backup".to_vec())),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(setup.client.clone(), setup.ns())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("MODE".to_owned(), "fast".to_owned()),
            ("LEVEL".to_owned(), "3".to_owned()),
        ])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(setup.client.clone(), setup.ns())
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();

    let script = "env | sort; echo \"ARGS=$*\"";
    setup
        .create_job(shell_job(
            "env",
            script,
            json!({ "spec": { "template": {
                "metadata": { "labels": { "team": "storage" }, "annotations": { "vertice.dev/run": "r-42" } },
                "spec": { "containers": [{
                    "args": ["x", "$(MODE)-$(LEVEL)", "$$(MODE)", "$(UNDEFINED)"],
                    "envFrom": [
                        { "configMapRef": { "name": "settings" } },
                        { "secretRef": { "name": "db" }, "prefix": "DB_" },
                    ],
                    "env": [
                        { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } },
                        { "name": "CM_MODE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "MODE" } } },
                        { "name": "OPTIONAL_MISSING", "valueFrom": { "secretKeyRef": { "name": "absent", "key": "k", "optional": true } } },
                        { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                        { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                        { "name": "POD_UID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.uid" } } },
                        { "name": "TEAM", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['team']" } } },
                        { "name": "RUN", "valueFrom": { "fieldRef": { "fieldPath": "metadata.annotations['vertice.dev/run']" } } },
                        { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
                        { "name": "NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
                        { "name": "LEVEL", "value": "override" },
                        { "name": "COMPOSED", "value": "$(MODE)/$(POD_NAME)/$$(MODE)/$(LATER)" },
                        { "name": "LATER", "value": "too-late" },
                    ],
                }] },
            } } }),
        ))
        .await;
    setup.job_condition("env", "Complete").await;
    let pod = setup.job_pods("env").await.remove(0);
    let pod_name = pod.metadata.name.clone().unwrap();
    let logs = setup.kubelet.logs(setup.ns(), &pod_name, "main");
    let env: BTreeMap<&str, &str> = logs
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let uid = pod.metadata.uid.clone().unwrap();
    let expected = [
        ("PASSWORD", "pa ss=w$rd"),
        ("DB_password", "pa ss=w$rd"),
        ("DB_user", "backup"),
        ("MODE", "fast"),
        ("CM_MODE", "fast"),
        // `env` wins over `envFrom`.
        ("LEVEL", "override"),
        ("POD_NAME", pod_name.as_str()),
        ("POD_NAMESPACE", setup.ns()),
        ("POD_UID", uid.as_str()),
        ("TEAM", "storage"),
        ("RUN", "r-42"),
        ("POD_IP", "127.0.0.1"),
        ("NODE", ""),
        ("HOSTNAME", pod_name.as_str()),
    ];
    for (name, value) in expected {
        assert_eq!(env.get(name).copied(), Some(value), "{name} in:\n{logs}");
    }
    // Expansion sees earlier variables only; `$$` escapes.
    let composed = format!("fast/{pod_name}/$(MODE)/$(LATER)");
    assert_eq!(env.get("COMPOSED").copied(), Some(composed.as_str()));
    // Args are expanded with the final environment (LEVEL is overridden by then); the first
    // one is `$0` of `sh -c`.
    assert_eq!(
        env.get("ARGS").copied(),
        Some("fast-override $(MODE) $(UNDEFINED)")
    );
    assert!(!env.contains_key("OPTIONAL_MISSING"));
    // The test process's own environment is not inherited.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "{logs}");
}

#[tokio::test]
async fn a_missing_secret_keeps_the_pod_pending_until_it_exists() {
    let setup = Setup::new("kubelet-config-error").await;
    let secret_env = |secret: &str, key: &str| {
        json!({ "spec": { "containers": [{ "env": [
            { "name": "V", "valueFrom": { "secretKeyRef": { "name": secret, "key": key } } }
        ] }] } })
    };
    setup
        .create_pod(shell_pod(
            "no-secret",
            "echo \"V=$V\"",
            secret_env("late", "k"),
        ))
        .await;
    setup
        .create_pod(shell_pod(
            "no-config-map",
            "true",
            json!({ "spec": { "containers": [{ "envFrom": [{ "configMapRef": { "name": "absent" } }] }] } }),
        ))
        .await;
    setup
        .create_pod(shell_pod(
            "no-volume-secret",
            "true",
            json!({ "spec": {
                "volumes": [{ "name": "s", "secret": { "secretName": "absent-too" } }],
                "containers": [{ "volumeMounts": [{ "name": "s", "mountPath": "/run/never" }] }],
            } }),
        ))
        .await;
    let expectations = [
        ("no-secret", "secret \"late\" not found"),
        ("no-config-map", "configmap \"absent\" not found"),
        ("no-volume-secret", "secret \"absent-too\" not found"),
    ];
    let pods = setup.pods();
    for (pod, message) in expectations {
        wait_until(&format!("{pod} to wait for config"), TIMEOUT, || {
            let pods = pods.clone();
            async move {
                let pod = pods.get(pod).await?;
                let Some(waiting) = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|s| s.first())
                    .and_then(|s| s.state.as_ref())
                    .and_then(|s| s.waiting.as_ref())
                else {
                    return Ok(false);
                };
                Ok(phase_of(&pod) == "Pending"
                    && waiting.reason.as_deref() == Some("CreateContainerConfigError")
                    && waiting.message.as_deref() == Some(message))
            }
        })
        .await
        .unwrap();
    }

    // The secret appears without its key: still waiting, now for the key.
    let secrets = Api::<Secret>::namespaced(setup.client.clone(), setup.ns());
    let mut secret = Secret {
        metadata: ObjectMeta {
            name: Some("late".to_owned()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([("other".to_owned(), "x".to_owned())])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let key_message = format!("couldn't find key k in Secret {}/late", setup.ns());
    wait_until("the missing key to be reported", TIMEOUT, || {
        let pods = pods.clone();
        let key_message = key_message.clone();
        async move {
            let pod = pods.get("no-secret").await?;
            let waiting = container_status(&pod).state.and_then(|s| s.waiting);
            Ok(waiting.and_then(|w| w.message) == Some(key_message))
        }
    })
    .await
    .unwrap();
    secret.string_data = Some(BTreeMap::from([("k".to_owned(), "arrived".to_owned())]));
    secrets
        .replace("late", &PostParams::default(), &secret)
        .await
        .unwrap();
    setup.pod_phase("no-secret", "Succeeded").await;
    let logs = setup.kubelet.logs(setup.ns(), "no-secret", "main");
    assert_eq!(logs.trim(), "V=arrived");
}

#[tokio::test]
async fn an_unmapped_image_fails_the_pod_with_a_clear_message() {
    let setup = Setup::new("kubelet-image").await;
    for (name, image) in [
        ("unknown", "registry.test/vertice/unknown:1"),
        ("other-repo", "docker.io/library/shell:1.0"),
        ("other-tag", "registry.test/vertice/shell:2.0"),
        // The port is not a tag.
        (
            "registry-port",
            "localhost:5000/registry.test/vertice/any-tag",
        ),
    ] {
        setup
            .create_pod(shell_pod(
                name,
                "true",
                json!({ "spec": { "containers": [{ "image": image }] } }),
            ))
            .await;
        let pod = setup.pod_phase(name, "Failed").await;
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.reason.as_deref(), Some("ErrImagePull"));
        let waiting = container_status(&pod).state.unwrap().waiting.unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
        let message = waiting.message.unwrap();
        assert!(message.contains(image), "{message}");
        assert!(message.contains(SHELL_IMAGE), "{message}");
    }
    // A digest is ignored; a mapping without a tag serves every tag.
    let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    for (name, image) in [
        ("with-digest", format!("{SHELL_IMAGE}@{digest}")),
        ("any-tag", format!("{ANY_TAG_IMAGE}:9.9")),
        ("any-tag-digest", format!("{ANY_TAG_IMAGE}:latest@{digest}")),
        ("no-tag", ANY_TAG_IMAGE.to_owned()),
    ] {
        setup
            .create_pod(shell_pod(
                name,
                "true",
                json!({ "spec": { "containers": [{ "image": image }] } }),
            ))
            .await;
        setup.pod_phase(name, "Succeeded").await;
    }
}

#[tokio::test]
async fn volumes_are_mounted_inside_the_process_only() {
    let setup = Setup::new("kubelet-volumes").await;
    let base = format!("/run/vertice-kubelet-test/{}", setup.ns());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".to_owned()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([
            ("password".to_owned(), "hunter2".to_owned()),
            ("unused".to_owned(), "x".to_owned()),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(setup.client.clone(), setup.ns())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("conf".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("a.conf".to_owned(), "alpha".to_owned()),
            ("b.conf".to_owned(), "beta".to_owned()),
        ])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(setup.client.clone(), setup.ns())
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(setup.client.clone(), setup.ns())
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();

    let script = format!(
        r#"
        echo "password=$(cat {base}/secret/pw/password)"
        echo "password-mode=$(stat -c %a {base}/secret/pw/password)"
        echo "secret-files=$(cd {base}/secret && find . -type f | sort | tr '\n' ' ')"
        echo "conf=$(cat {base}/conf/a.conf) $(cat {base}/conf/b.conf)"
        echo "one-file=$(cat {base}/single.conf)"
        echo "labels=$(cat {base}/info/labels)"
        if echo x > {base}/secret/pw/new 2>/dev/null; then echo secret-writable=yes; else echo secret-writable=no; fi
        echo scratch > {base}/scratch/file && echo "scratch=$(cat {base}/scratch/file)"
        echo "from-first-pod" > {base}/data/shared
        "#
    );
    setup
        .create_pod(shell_pod(
            "writer",
            &script,
            json!({
                "metadata": { "labels": { "app": "volumes" } },
                "spec": {
                    "volumes": [
                        { "name": "secret", "secret": { "secretName": "creds", "defaultMode": 0o400,
                            "items": [{ "key": "password", "path": "pw/password" }] } },
                        { "name": "conf", "configMap": { "name": "conf" } },
                        { "name": "info", "downwardAPI": { "items": [{ "path": "labels", "fieldRef": { "fieldPath": "metadata.labels" } }] } },
                        { "name": "scratch", "emptyDir": {} },
                        { "name": "data", "persistentVolumeClaim": { "claimName": "data" } },
                    ],
                    "containers": [{ "volumeMounts": [
                        { "name": "secret", "mountPath": format!("{base}/secret") },
                        { "name": "conf", "mountPath": format!("{base}/conf") },
                        { "name": "conf", "mountPath": format!("{base}/single.conf"), "subPath": "b.conf" },
                        { "name": "info", "mountPath": format!("{base}/info") },
                        { "name": "scratch", "mountPath": format!("{base}/scratch") },
                        { "name": "data", "mountPath": format!("{base}/data") },
                    ] }],
                },
            }),
        ))
        .await;
    setup.pod_phase("writer", "Succeeded").await;
    let logs = setup.kubelet.logs(setup.ns(), "writer", "main");
    for line in [
        "password=hunter2",
        "password-mode=400",
        "secret-files=./pw/password ",
        "conf=alpha beta",
        "one-file=beta",
        "labels=app=\"volumes\"",
        "secret-writable=no",
        "scratch=scratch",
    ] {
        assert!(
            logs.lines().any(|l| l == line),
            "{line:?} missing in:\n{logs}"
        );
    }

    // Outside the process's mount namespace the mount points are empty.
    let secret_dir = Path::new(&base).join("secret");
    assert!(secret_dir.is_dir());
    assert_eq!(std::fs::read_dir(&secret_dir).unwrap().count(), 0);
    assert!(!Path::new(&base).join("data/shared").exists());

    // A second Pod sees what the first wrote to the claim.
    setup
        .create_pod(shell_pod(
            "reader",
            &format!("cat {base}/claim/shared"),
            json!({ "spec": {
                "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "data" } }],
                "containers": [{ "volumeMounts": [{ "name": "data", "mountPath": format!("{base}/claim"), "readOnly": true }] }],
            } }),
        ))
        .await;
    setup.pod_phase("reader", "Succeeded").await;
    assert_eq!(
        setup.kubelet.logs(setup.ns(), "reader", "main").trim(),
        "from-first-pod"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn pod_failure_policy_and_backoff_limit_are_applied_to_exit_codes() {
    let setup = Setup::new("kubelet-failure-policy").await;
    let policy = |exit_code: i32, backoff_limit: i32| {
        json!({ "spec": {
            "backoffLimit": backoff_limit,
            "podFailurePolicy": { "rules": [
                { "action": "FailJob", "onExitCodes": { "operator": "In", "values": [2, 3, 6, 7, 9] } },
                { "action": "Ignore", "onPodConditions": [{ "type": "DisruptionTarget" }] },
            ] },
            "template": { "spec": { "containers": [{ "command": ["/bin/sh", "-c", format!("exit {exit_code}")] }] } },
        } })
    };
    // Fatal codes fail the Job on the first Pod, whatever the backoffLimit.
    for (name, code) in [("fatal-3", 3), ("fatal-7", 7)] {
        setup.create_job(shell_job(name, "", policy(code, 4))).await;
    }
    // Another code counts against backoffLimit: 1 retry, so 2 Pods.
    setup
        .create_job(shell_job("counted-1", "", policy(1, 1)))
        .await;

    for (name, code) in [("fatal-3", 3), ("fatal-7", 7)] {
        let job = setup.job_condition(name, "Failed").await;
        assert_eq!(
            condition_reason(&job, "Failed"),
            "PodFailurePolicy",
            "{name}"
        );
        assert_eq!(job.status.unwrap().failed, Some(1), "{name}");
        let pods = setup.job_pods(name).await;
        assert_eq!(pods.len(), 1, "{name}: no retry");
        assert_eq!(terminated(&pods[0]).0, code);
        assert_eq!(terminated(&pods[0]).1, "Error");
    }
    let job = setup.job_condition("counted-1", "Failed").await;
    assert_eq!(condition_reason(&job, "Failed"), "BackoffLimitExceeded");
    assert_eq!(job.status.unwrap().failed, Some(2));
    let pods = setup.job_pods("counted-1").await;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        assert_eq!(phase_of(pod), "Failed");
        assert_eq!(terminated(pod).0, 1);
    }
}

#[tokio::test]
async fn on_failure_restarts_the_container_in_place() {
    let setup = Setup::new("kubelet-restart").await;
    // The emptyDir survives container restarts, as in a real Pod.
    setup
        .create_job(shell_job(
            "flaky",
            "if [ -f /run/kubelet-restart-marker/once ]; then echo second; exit 0; fi; \
             touch /run/kubelet-restart-marker/once; echo first; exit 1",
            json!({ "spec": { "backoffLimit": 3, "template": { "spec": {
                "restartPolicy": "OnFailure",
                "volumes": [{ "name": "state", "emptyDir": {} }],
                "containers": [{ "volumeMounts": [{ "name": "state", "mountPath": "/run/kubelet-restart-marker" }] }],
            } } } }),
        ))
        .await;
    setup.job_condition("flaky", "Complete").await;
    let pods = setup.job_pods("flaky").await;
    assert_eq!(pods.len(), 1);
    let status = container_status(&pods[0]);
    assert_eq!(status.restart_count, 1);
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(terminated(&pods[0]).0, 0);
    let name = pods[0].metadata.name.as_deref().unwrap();
    assert_eq!(
        setup.kubelet.logs(setup.ns(), name, "main"),
        "first\nsecond\n"
    );
    let run = setup.kubelet.container(setup.ns(), name, "main").unwrap();
    let codes: Vec<i32> = run.exits.iter().map(|exit| exit.exit_code).collect();
    assert_eq!(codes, [1, 0]);
}

#[tokio::test]
async fn termination_messages_reach_the_pod_status() {
    let setup = Setup::new("kubelet-message").await;
    let long = "x".repeat(5000);
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "file-failure",
            "printf 'kind=unavailable\\nstore down' > /dev/termination-log; exit 4".to_owned(),
            json!({}),
        ),
        (
            "file-success",
            "echo '{\"backupId\":\"b-1\"}' > /dev/termination-log".to_owned(),
            json!({}),
        ),
        (
            "custom-path",
            "echo custom > /run/kubelet-message/result; exit 2".to_owned(),
            json!({ "spec": { "containers": [{ "terminationMessagePath": "/run/kubelet-message/result" }] } }),
        ),
        (
            "too-long",
            format!("printf {long} > /dev/termination-log; exit 1"),
            json!({}),
        ),
        (
            "fallback-to-logs",
            "echo line one; echo last words >&2; exit 5".to_owned(),
            json!({ "spec": { "containers": [{ "terminationMessagePolicy": "FallbackToLogsOnError" }] } }),
        ),
        (
            // The file wins over the logs when it has something.
            "fallback-file-wins",
            "echo noise; echo from-file > /dev/termination-log; exit 5".to_owned(),
            json!({ "spec": { "containers": [{ "terminationMessagePolicy": "FallbackToLogsOnError" }] } }),
        ),
        (
            // No fallback on success.
            "fallback-success",
            "echo fine".to_owned(),
            json!({ "spec": { "containers": [{ "terminationMessagePolicy": "FallbackToLogsOnError" }] } }),
        ),
    ];
    for (name, script, extra) in &cases {
        setup
            .create_pod(shell_pod(name, script, extra.clone()))
            .await;
    }
    let expected: [(&str, &str, i32, String); 7] = [
        (
            "file-failure",
            "Failed",
            4,
            "kind=unavailable\nstore down".to_owned(),
        ),
        (
            "file-success",
            "Succeeded",
            0,
            "{\"backupId\":\"b-1\"}\n".to_owned(),
        ),
        ("custom-path", "Failed", 2, "custom\n".to_owned()),
        ("too-long", "Failed", 1, "x".repeat(4096)),
        (
            "fallback-to-logs",
            "Failed",
            5,
            "line one\nlast words".to_owned(),
        ),
        ("fallback-file-wins", "Failed", 5, "from-file\n".to_owned()),
        ("fallback-success", "Succeeded", 0, String::new()),
    ];
    for (name, phase, code, message) in expected {
        let pod = setup.pod_phase(name, phase).await;
        let (exit_code, _, actual) = terminated(&pod);
        assert_eq!(exit_code, code, "{name}");
        assert_eq!(actual, message, "{name}");
    }
    // Every Pod had its own file; the host's stays untouched.
    let host = std::fs::read("/dev/termination-log").unwrap_or_default();
    assert!(
        host.is_empty(),
        "the host's /dev/termination-log was written"
    );
}

#[tokio::test]
async fn deleting_a_pod_stops_its_process_with_sigterm_then_sigkill() {
    let setup = Setup::new("kubelet-delete").await;
    // Exits on SIGTERM by itself.
    setup
        .create_pod(shell_pod(
            "polite",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
            json!({}),
        ))
        .await;
    // Ignores SIGTERM and leaves a child in its process group.
    setup
        .create_pod(shell_pod(
            "stubborn",
            "trap '' TERM; sleep 300 & echo \"child $!\"; echo ready; while :; do sleep 0.1; done",
            json!({ "spec": { "terminationGracePeriodSeconds": 2 } }),
        ))
        .await;
    for name in ["polite", "stubborn"] {
        setup.log_contains(name, "main", "ready").await;
        let pod = setup.pod_phase(name, "Running").await;
        let ready = pod
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True", "{name}");
    }
    let polite_pid = setup
        .kubelet
        .container(setup.ns(), "polite", "main")
        .unwrap()
        .pid
        .unwrap();
    let stubborn_pid = setup
        .kubelet
        .container(setup.ns(), "stubborn", "main")
        .unwrap()
        .pid
        .unwrap();
    let logs = setup.kubelet.logs(setup.ns(), "stubborn", "main");
    let child_pid: u32 = logs
        .lines()
        .find_map(|line| line.strip_prefix("child "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{polite_pid}")).exists());
    assert!(Path::new(&format!("/proc/{child_pid}")).exists());

    let deleted_at = Instant::now();
    for name in ["polite", "stubborn"] {
        setup
            .pods()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    // Unbound pods are removed at once.
    assert!(setup.pods().get_opt("polite").await.unwrap().is_none());

    let exits = |name: &'static str| {
        let kubelet = &setup.kubelet;
        let ns = setup.ns().to_owned();
        move || {
            let ns = ns.clone();
            async move {
                Ok(kubelet
                    .container(&ns, name, "main")
                    .is_some_and(|run| !run.exits.is_empty()))
            }
        }
    };
    wait_until("polite to exit", TIMEOUT, exits("polite"))
        .await
        .unwrap();
    let polite = setup
        .kubelet
        .container(setup.ns(), "polite", "main")
        .unwrap();
    assert_eq!(polite.exits[0].exit_code, 7);
    assert_eq!(polite.exits[0].signal, None);
    assert!(
        setup
            .kubelet
            .logs(setup.ns(), "polite", "main")
            .contains("got TERM")
    );

    wait_until("stubborn to be killed", TIMEOUT, exits("stubborn"))
        .await
        .unwrap();
    assert!(
        deleted_at.elapsed() >= Duration::from_secs(2),
        "SIGKILL came before the grace period"
    );
    let stubborn = setup
        .kubelet
        .container(setup.ns(), "stubborn", "main")
        .unwrap();
    assert_eq!(stubborn.exits[0].exit_code, 137);
    assert_eq!(stubborn.exits[0].signal, Some(9));
    assert!(stubborn.pid.is_none());
    for pid in [polite_pid, stubborn_pid, child_pid] {
        wait_until(
            &format!("process {pid} to be gone"),
            TIMEOUT,
            || async move { Ok(!Path::new(&format!("/proc/{pid}")).exists()) },
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_deleted_job_pod_is_marked_failed_and_replaced() {
    let setup = Setup::new("kubelet-job-delete").await;
    setup
        .create_job(shell_job(
            "long",
            "echo ready; while :; do sleep 0.1; done",
            // With a podFailurePolicy the job controller waits for a deleted Pod to become
            // terminal before it counts it and creates a replacement: the kubelet's part.
            json!({ "spec": {
                "backoffLimit": 2,
                "podFailurePolicy": { "rules": [
                    { "action": "FailJob", "onExitCodes": { "operator": "In", "values": [42] } },
                ] },
                "template": { "spec": { "terminationGracePeriodSeconds": 5 } },
            } }),
        ))
        .await;
    let first = wait_for_new_job_pod(&setup, "long", &[]).await;
    let name = first.metadata.name.clone().unwrap();
    setup.log_contains(&name, "main", "ready").await;
    setup
        .pods()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    // SIGTERM ends `sh` at once (no trap): 143; the Pod is marked Failed, the job controller
    // counts it and removes its finalizer, and the Pod goes.
    let pods = setup.pods();
    wait_until("the deleted pod to go", TIMEOUT, || {
        let pods = pods.clone();
        let name = name.clone();
        async move { Ok(pods.get_opt(&name).await?.is_none()) }
    })
    .await
    .unwrap();
    let jobs = setup.jobs();
    wait_until("the job to count the failure", TIMEOUT, || {
        let jobs = jobs.clone();
        async move { Ok(jobs.get("long").await?.status.and_then(|s| s.failed) == Some(1)) }
    })
    .await
    .unwrap();
    let run = setup.kubelet.container(setup.ns(), &name, "main").unwrap();
    assert_eq!(run.exits[0].exit_code, 143);
    // Then it creates a replacement, which the kubelet runs too.
    let second = wait_for_new_job_pod(&setup, "long", std::slice::from_ref(&name)).await;
    let second_name = second.metadata.name.clone().unwrap();
    setup.log_contains(&second_name, "main", "ready").await;
}

/// Waits until the Job has a Pod not named in `known` and returns it.
async fn wait_for_new_job_pod(setup: &Setup, job: &str, known: &[String]) -> Pod {
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
