//! BackupRequests and RestoreRequests against the real kube-apiserver: every kind of invalid
//! run or restore is refused at admission with a message that says what to fix, a run's spec
//! and a finished result are immutable, project fields and `retentionDays` are bounded, and a
//! run needs a part whose object sources are buckets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/admission.rs"]
mod admission;

use admission::{GROUP, VERSION, api, create, edit, example, expect_refused, setup};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

#[tokio::test]
async fn invalid_runs_and_restores_are_refused_with_a_reason() {
    let (client, namespace) = setup("api-runs").await;
    let run = example("backuprequest.yaml");
    let vb = example("verticebackup.yaml");
    let inline = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "BackupRequest",
        "spec": {"target": vb["spec"]["target"], "storage": vb["spec"]["storage"], "encryption": vb["spec"]["encryption"]}});
    let run_cases = vec![
        (
            "policy and inline target",
            edit(&run, "/spec/target", Some(vb["spec"]["target"].clone())),
            "exactly one of `backupRef`",
        ),
        (
            "neither policy nor target",
            edit(&run, "/spec/backupRef", None),
            "exactly one of `backupRef`",
        ),
        (
            "inline without storage",
            edit(&inline, "/spec/storage", None),
            "needs `storage` and `encryption`",
        ),
        (
            "inline without encryption",
            edit(&inline, "/spec/encryption", None),
            "needs `storage` and `encryption`",
        ),
        (
            "policy plus storage",
            edit(&run, "/spec/storage", Some(vb["spec"]["storage"].clone())),
            "come from the VerticeBackup",
        ),
        (
            "backup name with a slash",
            edit(&run, "/spec/backupName", Some(json!("a/b"))),
            "spec.backupName",
        ),
    ];
    let mut wrong =
        expect_refused(&api(&client, namespace.name(), "BackupRequest"), run_cases).await;

    let restore = example("restorerequest.yaml");
    let restore_cases = vec![
        (
            "two sources",
            edit(
                &restore,
                "/spec/source/storage",
                Some(vb["spec"]["storage"].clone()),
            ),
            "exactly one of `backupRequestRef`",
        ),
        (
            "storage without a name",
            edit(
                &restore,
                "/spec/source",
                Some(json!({"storage": vb["spec"]["storage"], "encryption": {"disabled": true}})),
            ),
            "needs `backupName` and `encryption`",
        ),
        (
            "postgres target without host",
            edit(&restore, "/spec/target/host", None),
            "need `host`, `user` and `passwordSecretRef`",
        ),
        (
            "redis without a volume",
            edit(&restore, "/spec/target", Some(json!({"engine": "redis"}))),
            "writes an RDB file",
        ),
        (
            "database on redis",
            edit(
                &restore,
                "/spec/target",
                Some(
                    json!({"engine": "redis", "database": "x", "persistentVolumeClaim": {"name": "p"}}),
                ),
            ),
            "for postgres and mariadb",
        ),
    ];
    wrong.extend(
        expect_refused(
            &api(&client, namespace.name(), "RestoreRequest"),
            restore_cases,
        )
        .await,
    );
    assert!(wrong.is_empty(), "wrong cases:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_run_spec_and_a_finished_result_are_immutable() {
    let (client, namespace) = setup("api-immutable").await;
    let runs = api(&client, namespace.name(), "BackupRequest");
    create(&runs, example("backuprequest.yaml"), "run")
        .await
        .unwrap();

    let edited = json!({"spec": {"labels": {"reason": "changed"}}});
    let error = runs
        .patch("run", &PatchParams::default(), &Patch::Merge(&edited))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("spec is immutable"), "{error}");

    let status = |phase: &str, name: &str| json!({"status": {"phase": phase, "result": {"backupName": name, "storedSize": 10}}});
    // A running run's status may change; a finished one's result may not.
    for (phase, name) in [("Running", "a"), ("Succeeded", "b")] {
        runs.patch_status(
            "run",
            &PatchParams::default(),
            &Patch::Merge(&status(phase, name)),
        )
        .await
        .unwrap_or_else(|e| panic!("{phase}: {e}"));
    }
    for (phase, name) in [("Succeeded", "c"), ("Failed", "b"), ("Running", "b")] {
        let error = runs
            .patch_status(
                "run",
                &PatchParams::default(),
                &Patch::Merge(&status(phase, name)),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("phase and result are immutable"),
            "{phase}/{name}: {error}"
        );
    }
    let current = runs.get("run").await.unwrap();
    assert_eq!(current.data["status"]["result"]["backupName"], "b");
}

/// Issue 8 §3: `projectId` and `environment` are label values on both kinds; `retentionDays`
/// is 7–365 and never together with `retention.maxAge`.
#[tokio::test]
async fn project_fields_and_retention_days_are_bounded() {
    let (client, namespace) = setup("api-project").await;
    let vb = example("verticebackup.yaml");
    let run = example("backuprequest.yaml");
    let vbs = api(&client, namespace.name(), "VerticeBackup");
    let runs = api(&client, namespace.name(), "BackupRequest");
    let with = |base: &Value, fields: Value| {
        let mut copy = base.clone();
        for (key, value) in fields.as_object().unwrap() {
            copy["spec"][key] = value.clone();
        }
        copy
    };
    let longest = "p".repeat(63);
    // Accepted: the bounds themselves, label-value characters, retentionDays beside other rules.
    for (index, fields) in [
        json!({"projectId": "shop", "environment": "production", "retentionDays": 7}),
        json!({"projectId": longest, "environment": "eu-1.prod_b", "retentionDays": 365}),
        json!({"projectId": "A9", "retentionDays": 30, "retention": {"keepLast": 5}}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut object = with(&vb, fields.clone());
        if fields.get("retention").is_some() || fields.get("retentionDays").is_some() {
            // The example's own maxAge would clash with retentionDays.
            if let Some(retention) = object["spec"]["retention"].as_object_mut() {
                retention.remove("maxAge");
            }
        }
        create(&vbs, object, &format!("ok-{index}"))
            .await
            .unwrap_or_else(|e| panic!("{fields}: {e}"));
    }
    for (index, fields) in [
        json!({"projectId": "shop", "environment": "staging"}),
        json!({"projectId": longest}),
    ]
    .into_iter()
    .enumerate()
    {
        create(&runs, with(&run, fields.clone()), &format!("ok-{index}"))
            .await
            .unwrap_or_else(|e| panic!("{fields}: {e}"));
    }

    let too_long = "p".repeat(64);
    let no_max_age = |fields: Value| {
        let mut object = with(&vb, fields);
        object["spec"]["retention"] = json!({"keepLast": 3});
        object
    };
    let mut vb_cases = vec![
        (
            "retentionDays below 7",
            no_max_age(json!({"retentionDays": 6})),
            "spec.retentionDays",
        ),
        (
            "retentionDays 0",
            no_max_age(json!({"retentionDays": 0})),
            "spec.retentionDays",
        ),
        (
            "retentionDays above 365",
            no_max_age(json!({"retentionDays": 366})),
            "spec.retentionDays",
        ),
        (
            "retentionDays and maxAge",
            with(
                &vb,
                json!({"retentionDays": 30, "retention": {"maxAge": "720h"}}),
            ),
            "not both",
        ),
    ];
    for (kind, field) in [
        ("projectId", "spec.projectId"),
        ("environment", "spec.environment"),
    ] {
        for bad in [
            "",
            "team a",
            "-shop",
            "shop-",
            "team/a",
            "é",
            too_long.as_str(),
        ] {
            vb_cases.push(("bad label value", with(&vb, json!({kind: bad})), field));
        }
    }
    let mut run_cases = Vec::new();
    for (kind, field) in [
        ("projectId", "spec.projectId"),
        ("environment", "spec.environment"),
    ] {
        for bad in ["", "team a", ".x", "a:b", too_long.as_str()] {
            run_cases.push(("bad label value", with(&run, json!({kind: bad})), field));
        }
    }
    let mut wrong = expect_refused(&vbs, vb_cases).await;
    wrong.extend(expect_refused(&runs, run_cases).await);
    assert!(wrong.is_empty(), "wrong cases:\n{}", wrong.join("\n"));
}

/// Issue 8 §3: a run's parts. An inline BackupRequest and a VerticeBackup need at least one
/// part (`target`, `objectStore`); an `objectStore` source is a bucket with its folder in
/// `prefix` (free-form), never a local volume.
#[tokio::test]
async fn runs_need_a_part_and_object_sources_are_buckets() {
    let (client, namespace) = setup("api-parts").await;
    let vb = example("verticebackup.yaml");
    let object_store = json!({
        "source": vb["spec"]["storage"],
        "prefix": "Documentos de 2024/año 1+2 %20",
        "include": ["**/*.pdf"],
        "exclude": ["**/thumbnails/**", "*.tmp"],
    });
    let mut source_without_prefix = object_store.clone();
    source_without_prefix["source"]
        .as_object_mut()
        .unwrap()
        .remove("prefix");
    let inline = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "BackupRequest",
        "spec": {"storage": vb["spec"]["storage"], "encryption": vb["spec"]["encryption"]}});
    let vbs = api(&client, namespace.name(), "VerticeBackup");
    let runs = api(&client, namespace.name(), "BackupRequest");

    // Accepted: a copy alone, a dump alone, both; on both kinds.
    let copy_only_vb = edit(
        &edit(&vb, "/spec/target", None),
        "/spec/objectStore",
        Some(source_without_prefix.clone()),
    );
    let both_vb = edit(
        &vb,
        "/spec/objectStore",
        Some(source_without_prefix.clone()),
    );
    for (index, object) in [copy_only_vb, both_vb].into_iter().enumerate() {
        create(&vbs, object, &format!("ok-{index}"))
            .await
            .unwrap_or_else(|e| panic!("VerticeBackup {index}: {e}"));
    }
    let copy_only = edit(
        &inline,
        "/spec/objectStore",
        Some(source_without_prefix.clone()),
    );
    let both = edit(
        &copy_only,
        "/spec/target",
        Some(vb["spec"]["target"].clone()),
    );
    for (index, object) in [copy_only.clone(), both].into_iter().enumerate() {
        create(&runs, object, &format!("ok-{index}"))
            .await
            .unwrap_or_else(|e| panic!("BackupRequest {index}: {e}"));
    }

    let local_source = json!({"store": "local", "persistentVolumeClaim": {"name": "files"}});
    let mut bad_bucket = source_without_prefix.clone();
    bad_bucket["source"]["bucket"] = json!("uploads/media");
    let mut no_credentials = source_without_prefix.clone();
    no_credentials["source"]
        .as_object_mut()
        .unwrap()
        .remove("credentialsSecretRef");
    let vb_cases = vec![
        (
            "no part",
            edit(&vb, "/spec/target", None),
            "at least one part",
        ),
        (
            "source folder in source.prefix",
            edit(&vb, "/spec/objectStore", Some(object_store.clone())),
            "put the source folder in `objectStore.prefix`",
        ),
        (
            "local source",
            edit(
                &vb,
                "/spec/objectStore",
                Some(json!({"source": local_source})),
            ),
            "not a local volume",
        ),
        (
            "source bucket with a slash",
            edit(&vb, "/spec/objectStore", Some(bad_bucket)),
            "S3 bucket name",
        ),
        (
            "source without credentials",
            edit(&vb, "/spec/objectStore", Some(no_credentials)),
            "needs `credentialsSecretRef`",
        ),
        (
            "prefix too long",
            edit(
                &vb,
                "/spec/objectStore",
                Some(
                    json!({"source": source_without_prefix["source"], "prefix": "x".repeat(1025)}),
                ),
            ),
            "spec.objectStore.prefix",
        ),
        (
            "empty glob",
            edit(
                &vb,
                "/spec/objectStore",
                Some(json!({"source": source_without_prefix["source"], "exclude": [""]})),
            ),
            "spec.objectStore.exclude",
        ),
    ];
    let run_cases = vec![
        (
            "inline run with no part",
            inline.clone(),
            "exactly one of `backupRef`",
        ),
        (
            "policy and an inline copy",
            edit(
                &example("backuprequest.yaml"),
                "/spec/objectStore",
                Some(source_without_prefix.clone()),
            ),
            "exactly one of `backupRef`",
        ),
        (
            "copy without storage",
            edit(&copy_only, "/spec/storage", None),
            "needs `storage` and `encryption`",
        ),
        (
            "local source",
            edit(
                &inline,
                "/spec/objectStore",
                Some(json!({"source": local_source})),
            ),
            "not a local volume",
        ),
    ];
    let mut wrong = expect_refused(&vbs, vb_cases).await;
    wrong.extend(expect_refused(&runs, run_cases).await);
    assert!(wrong.is_empty(), "wrong cases:\n{}", wrong.join("\n"));
}
