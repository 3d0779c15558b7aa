//! The backup CRDs against the real kube-apiserver: the examples are accepted, and every kind
//! of invalid VerticeBackup is refused at admission with a message that says what to fix.
//! Runs and restores are in `api_admission_runs.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/admission.rs"]
mod admission;

use admission::{api, create, edit, example, expect_refused, setup};
use serde_json::{Value, json};

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
