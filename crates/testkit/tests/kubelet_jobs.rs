//! The kubelet stand-in with the REAL job controller (etcd, kube-apiserver and
//! kube-controller-manager): Jobs run to completion, podFailurePolicy and backoffLimit are applied
//! to the exit codes the stand-in reports, OnFailure restarts in place, and a deleted Job Pod is
//! marked Failed so the job controller counts and replaces it; a kubelet serves only its own
//! namespaces and label selector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kubelet_support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use vertice_testkit::kubelet::{Kubelet, KubeletOptions};
use vertice_testkit::namespace::TestNamespace;
use vertice_testkit::process::wait_until;

use kubelet_support::*;

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
    let state = format!("{}/state", setup.host_dir());
    // The emptyDir survives container restarts, as in a real Pod.
    setup
        .create_job(shell_job(
            "flaky",
            &format!(
                "if [ -f {state}/once ]; then echo second; exit 0; fi; \
                 touch {state}/once; echo first; exit 1"
            ),
            json!({ "spec": { "backoffLimit": 3, "template": { "spec": {
                "restartPolicy": "OnFailure",
                "volumes": [{ "name": "state", "emptyDir": {} }],
                "containers": [{ "volumeMounts": [{ "name": "state", "mountPath": state }] }],
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
    let _ = std::fs::remove_dir_all(setup.host_dir());
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

#[tokio::test]
async fn a_kubelet_serves_only_its_namespaces_and_label_selector() {
    let setup = Setup::new("kubelet-scope").await;
    let second = TestNamespace::create(&setup.client, "kubelet-scope-second")
        .await
        .unwrap();
    let third = TestNamespace::create(&setup.client, "kubelet-scope-third")
        .await
        .unwrap();
    let kubelet = Kubelet::start(
        &setup.client,
        KubeletOptions::new(second.name())
            .namespace(third.name())
            .label_selector("batch.kubernetes.io/job-name")
            .image(SHELL_IMAGE, "/bin/sh"),
    )
    .await
    .unwrap();
    let create = |namespace: &str, object: Value| {
        let client = setup.client.clone();
        let namespace = namespace.to_owned();
        async move {
            if object["kind"] == "Job" {
                let job: Job = serde_json::from_value(object).unwrap();
                Api::<Job>::namespaced(client, &namespace)
                    .create(&PostParams::default(), &job)
                    .await
                    .unwrap();
            } else {
                let pod: Pod = serde_json::from_value(object).unwrap();
                Api::<Pod>::namespaced(client, &namespace)
                    .create(&PostParams::default(), &pod)
                    .await
                    .unwrap();
            }
        }
    };
    // Created first, so the kubelet would have seen it before the Job's Pod if it served it.
    create(second.name(), shell_pod("bare", "echo ran", json!({}))).await;
    create(second.name(), shell_job("served", "echo served", json!({}))).await;
    create(
        third.name(),
        shell_job("also-served", "echo also", json!({})),
    )
    .await;

    for (namespace, job) in [(second.name(), "served"), (third.name(), "also-served")] {
        let jobs = Api::<Job>::namespaced(setup.client.clone(), namespace);
        wait_until(&format!("{namespace}/{job} to complete"), TIMEOUT, || {
            let jobs = jobs.clone();
            async move { Ok(has_condition(&jobs.get(job).await?, "Complete")) }
        })
        .await
        .unwrap();
    }
    let bare = Api::<Pod>::namespaced(setup.client.clone(), second.name())
        .get("bare")
        .await
        .unwrap();
    assert_eq!(phase_of(&bare), "Pending");
    let statuses = bare.status.and_then(|status| status.container_statuses);
    assert!(statuses.is_none(), "{statuses:?}");
    assert!(kubelet.container(second.name(), "bare", "main").is_none());
    // The first kubelet serves only the first namespace.
    assert!(
        setup
            .kubelet
            .container(second.name(), "bare", "main")
            .is_none()
    );
}
