//! The kubelet stand-in against the REAL control plane, with bare Pods: env and volumes reach
//! the process (and only the process), missing config keeps a Pod Pending, unmapped images fail,
//! termination messages reach the Pod status, and deleting a Pod stops its process with SIGTERM,
//! then SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kubelet_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};
use vertice_testkit::process::wait_until;

use kubelet_support::*;

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
    let base = setup.host_dir();
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
async fn termination_messages_reach_the_pod_status() {
    let setup = Setup::new("kubelet-message").await;
    let result = format!("{}/result", setup.host_dir());
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
            format!("echo custom > {result}; exit 2"),
            json!({ "spec": { "containers": [{ "terminationMessagePath": result }] } }),
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
    let _ = std::fs::remove_dir_all(setup.host_dir());
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
