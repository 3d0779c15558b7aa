//! The backup CRDs against the real kube-apiserver: the examples are accepted, and every kind
//! of invalid spec is refused at admission with a message that says what to fix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::crds::install_crds;
use vertice_testkit::namespace::TestNamespace;

const GROUP: &str = "backup.vertice.dev";
const VERSION: &str = "v1alpha1";

async fn setup(prefix: &str) -> (kube::Client, TestNamespace) {
    let control_plane = ControlPlane::shared().await.unwrap();
    let client = control_plane.admin_client().await.unwrap();
    install_crds(&client, &vertice_backup::crds())
        .await
        .unwrap();
    let namespace = TestNamespace::create(&client, prefix).await.unwrap();
    (client, namespace)
}

fn api(client: &kube::Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn example(file: &str) -> Value {
    let path = format!(
        "{}/../../examples/backup/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `base` with the value at JSON pointer `path` replaced (or removed when `value` is None).
fn edit(base: &Value, path: &str, value: Option<Value>) -> Value {
    let mut copy = base.clone();
    let (parent, key) = path.rsplit_once('/').unwrap();
    let parent = copy
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    let map = parent.as_object_mut().unwrap();
    match value {
        Some(value) => {
            map.insert(key.to_owned(), value);
        }
        None => {
            map.remove(key);
        }
    }
    copy
}

async fn create(api: &Api<DynamicObject>, mut object: Value, name: &str) -> Result<(), String> {
    object["metadata"] = json!({"name": name});
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Tries every case; collects every case that was accepted or refused for another reason.
async fn expect_refused(api: &Api<DynamicObject>, cases: Vec<(&str, Value, &str)>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (index, (what, object, expected)) in cases.into_iter().enumerate() {
        match create(api, object, &format!("invalid-{index}")).await {
            Ok(()) => wrong.push(format!("{what}: accepted")),
            Err(message) if message.contains(expected) => {}
            Err(message) => wrong.push(format!(
                "{what}: refused with {message:?}, expected {expected:?}"
            )),
        }
    }
    wrong
}

#[tokio::test]
async fn the_examples_are_accepted() {
    let (client, namespace) = setup("api-examples").await;
    for (kind, file) in [
        ("VerticeBackup", "verticebackup.yaml"),
        ("BackupRequest", "backuprequest.yaml"),
        ("RestoreRequest", "restorerequest.yaml"),
        ("BackupRequest", "projects/project-backup.yaml"),
    ] {
        let object = example(file);
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        create(&api(&client, namespace.name(), kind), object, &name)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[tokio::test]
async fn invalid_vertice_backups_are_refused_with_a_reason() {
    let (client, namespace) = setup("api-vb").await;
    let base = example("verticebackup.yaml");
    let s = |path: &str, value: Value| edit(&base, path, Some(value));
    let r = |path: &str| edit(&base, path, None);
    let cases = vec![
        (
            "6-field cron",
            s("/spec/schedule", json!("0 0 3 * * *")),
            "5-field cron",
        ),
        (
            "minute 61",
            s("/spec/schedule", json!("61 * * * *")),
            "5-field cron",
        ),
        (
            "@every macro",
            s("/spec/schedule", json!("@every 5m")),
            "5-field cron",
        ),
        (
            "empty schedule",
            s("/spec/schedule", json!("")),
            "spec.schedule",
        ),
        (
            "unknown time zone",
            s("/spec/timeZone", json!("Mars/Olympus_Mons")),
            "IANA time zone",
        ),
        (
            "negative keepLast",
            s("/spec/retention/keepLast", json!(-1)),
            "keepLast",
        ),
        (
            "maxAge in days",
            s("/spec/retention/maxAge", json!("30d")),
            "positive duration",
        ),
        (
            "zero maxAge",
            s("/spec/retention/maxAge", json!("0h")),
            "positive duration",
        ),
        (
            "target without credentials",
            r("/spec/target/passwordSecretRef"),
            "never connects without credentials",
        ),
        (
            "postgres without database",
            r("/spec/target/database"),
            "needs `database`",
        ),
        (
            "postgres without user",
            r("/spec/target/user"),
            "need `user`",
        ),
        (
            "databases on postgres",
            s("/spec/target/databases", json!(["a"])),
            "mariadb only",
        ),
        (
            "port out of range",
            s("/spec/target/port", json!(70000)),
            "spec.target.port",
        ),
        (
            "unknown engine",
            s("/spec/target/engine", json!("oracle")),
            "Unsupported value",
        ),
        (
            "neither key nor disabled",
            s("/spec/encryption", json!({})),
            "exactly one of `keySecretRef`",
        ),
        (
            "key and disabled",
            s("/spec/encryption/disabled", json!(true)),
            "exactly one of `keySecretRef`",
        ),
        (
            "folder in the bucket",
            s("/spec/storage/bucket", json!("bkt/team")),
            "put folders in `prefix`",
        ),
        (
            "cloud store without credentials",
            r("/spec/storage/credentialsSecretRef"),
            "operator's own cloud identity",
        ),
        (
            "local store without a volume",
            s("/spec/storage", json!({"store": "local"})),
            "needs `persistentVolumeClaim`",
        ),
        (
            "absolute prefix",
            s("/spec/storage/prefix", json!("/shop")),
            "spec.storage.prefix",
        ),
        (
            "endpoint not a URL",
            s("/spec/storage/endpoint", json!("minio:9000")),
            "http:// or https://",
        ),
        (
            "unknown concurrency policy",
            s("/spec/concurrencyPolicy", json!("Sometimes")),
            "Unsupported value",
        ),
        (
            "tiny starting deadline",
            s("/spec/startingDeadlineSeconds", json!(0)),
            "startingDeadlineSeconds",
        ),
        (
            "gzip level 12",
            s(
                "/spec/compression",
                json!({"algorithm": "gzip", "level": 12}),
            ),
            "gzip levels are 1–9",
        ),
        (
            "level without compression",
            s(
                "/spec/compression",
                json!({"algorithm": "none", "level": 3}),
            ),
            "needs a compressing algorithm",
        ),
        (
            "two channels in one notification",
            s(
                "/spec/notifications",
                json!([{"name": "n", "webhook": {"urlSecretRef": {"name": "a", "key": "b"}},
                "slack": {"webhookUrlSecretRef": {"name": "a", "key": "b"}}}]),
            ),
            "exactly one of `slack`",
        ),
        (
            "duplicate notification names",
            s(
                "/spec/notifications",
                json!([
                {"name": "n", "webhook": {"urlSecretRef": {"name": "a", "key": "b"}}},
                {"name": "n", "webhook": {"urlSecretRef": {"name": "c", "key": "d"}}}]),
            ),
            "names must be unique",
        ),
        (
            "email to nobody",
            s(
                "/spec/notifications",
                json!([{"name": "m", "email": {"smtpHost": "smtp", "from": "a@b", "to": []}}]),
            ),
            "spec.notifications[0].email.to",
        ),
        (
            "ftp hook",
            s(
                "/spec/hooks",
                json!({"pre": [{"name": "h", "url": "ftp://host/x"}]}),
            ),
            "http:// or https://",
        ),
        (
            "hook timeout 0",
            s(
                "/spec/hooks",
                json!({"pre": [{"name": "h", "url": "http://h/x", "timeoutSeconds": 0}]}),
            ),
            "timeoutSeconds",
        ),
        (
            "image with InProcess",
            s("/spec/executor", json!({"type": "InProcess", "image": "x"})),
            "apply to type Job only",
        ),
        (
            "negative history",
            s("/spec/successfulRunsHistoryLimit", json!(-1)),
            "successfulRunsHistoryLimit",
        ),
        (
            "unknown deletion policy",
            s("/spec/deletionPolicy", json!("Shred")),
            "Unsupported value",
        ),
        (
            "drill with bad cron",
            s("/spec/verification", json!({"schedule": "every day"})),
            "5-field cron",
        ),
    ];
    let count = cases.len();
    let wrong = expect_refused(&api(&client, namespace.name(), "VerticeBackup"), cases).await;
    assert!(
        wrong.is_empty(),
        "{} of {count} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

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
