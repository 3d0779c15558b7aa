//! The benchmark's objects: N VerticeBackups whose schedules fire in one given UTC minute
//! (InProcess executor, S3 store, a tiny database), and M finished BackupRequests per policy,
//! created with a `Succeeded` status before the operator starts (so it only ever sees them
//! finished, as after months of nightly runs).

use anyhow::Context;
use chrono::{DateTime, TimeZone, Timelike, Utc};
use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::ResourceExt;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use vertice_backup::api::{BackupRequest, VerticeBackup};
use vertice_backup::controller::labels;

use crate::demo::secrets;

/// Requests in flight against the apiserver while creating objects.
const PARALLEL_REQUESTS: usize = 16;

/// A label only on the finished BackupRequests the benchmark creates, so the runs the slot
/// creates can be listed alone (`!bench.vertice.dev/seeded`).
pub const SEEDED_LABEL: &str = "bench.vertice.dev/seeded";

/// Where the policies back up from and to.
pub struct Target {
    /// PostgreSQL host and port.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The login (password in the Secret `secrets::DATABASE`).
    pub user: String,
    /// The database.
    pub database: String,
    /// S3 endpoint.
    pub s3_endpoint: String,
    /// The bucket.
    pub bucket: String,
}

/// The name of policy `index`: `bench-0000`, `bench-0001`, …
pub fn policy_name(index: usize) -> String {
    format!("bench-{index:04}")
}

/// The name a schedule gives the BackupRequest of `policy` for the slot starting at `slot`
/// (the shared convention: `<policy>-<unix minute>`).
pub fn slot_request_name(policy: &str, slot: DateTime<Utc>) -> String {
    format!("{policy}-{}", slot.timestamp().div_euclid(60))
}

/// A 5-field cron expression that fires once a day, in the minute `slot` starts (UTC).
pub fn daily_cron(slot: DateTime<Utc>) -> String {
    format!("{} {} * * *", slot.minute(), slot.hour())
}

/// The start of the first whole minute at least `lead` after `now`.
pub fn next_minute_after(now: DateTime<Utc>, lead: chrono::Duration) -> DateTime<Utc> {
    let earliest = now + lead;
    let minute = earliest.timestamp().div_euclid(60);
    let start = if earliest.timestamp().rem_euclid(60) == 0 && earliest.nanosecond() == 0 {
        minute
    } else {
        minute + 1
    };
    Utc.timestamp_opt(start * 60, 0)
        .single()
        .unwrap_or(earliest)
}

/// The VerticeBackup of policy `index`, firing daily at `slot`'s minute (UTC).
pub fn policy(index: usize, slot: DateTime<Utc>, target: &Target) -> Value {
    json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": policy_name(index)},
        "spec": {
            "target": {
                "engine": "postgres",
                "host": target.host,
                "port": target.port,
                "user": target.user,
                "passwordSecretRef": {"name": secrets::DATABASE, "key": "password"},
                "database": target.database,
            },
            "schedule": daily_cron(slot),
            "timeZone": "UTC",
            "concurrencyPolicy": "Forbid",
            // Generous: with a thousand slots in one minute some reconciles start late.
            "startingDeadlineSeconds": 3600,
            "storage": {
                "store": "s3",
                "endpoint": target.s3_endpoint,
                "bucket": target.bucket,
                "prefix": format!("bench/{}", policy_name(index)),
                "credentialsSecretRef": {"name": secrets::STORE},
            },
            "encryption": {"keySecretRef": {"name": secrets::KEY, "key": "key"}},
            "executor": {"type": "InProcess"},
            "successfulRunsHistoryLimit": 100,
            "failedRunsHistoryLimit": 100,
        }
    })
}

/// Creates policies `0..count` in `namespace`.
///
/// Errors: the apiserver refused one.
pub async fn create_policies(
    client: &kube::Client,
    namespace: &str,
    count: usize,
    slot: DateTime<Utc>,
    target: &Target,
) -> anyhow::Result<()> {
    let api: Api<VerticeBackup> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(0..count)
        .map(|index| {
            let api = api.clone();
            let object = policy(index, slot, target);
            async move {
                let policy: VerticeBackup = serde_json::from_value(object)?;
                api.create(&PostParams::default(), &policy)
                    .await
                    .with_context(|| format!("creating VerticeBackup {}", policy_name(index)))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(PARALLEL_REQUESTS)
        .try_collect::<()>()
        .await
}

/// Creates `per_policy` finished (Succeeded) BackupRequests for each of policies `0..policies`,
/// one per day before `now`, named and labelled as a schedule would have.
///
/// Errors: the apiserver refused one.
pub async fn create_finished_requests(
    client: &kube::Client,
    namespace: &str,
    policies: usize,
    per_policy: usize,
    now: DateTime<Utc>,
    labelled: bool,
) -> anyhow::Result<()> {
    let api: Api<BackupRequest> = Api::namespaced(client.clone(), namespace);
    let status_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &kube::api::ApiResource::erase::<BackupRequest>(&()),
    );
    let today = Utc
        .timestamp_opt(now.timestamp().div_euclid(86_400) * 86_400 + 3 * 3600, 0)
        .single()
        .unwrap_or(now);
    let jobs = (0..policies).flat_map(|policy| (1..=per_policy).map(move |day| (policy, day)));
    futures::stream::iter(jobs)
        .map(|(index, day)| {
            let api = api.clone();
            let status_api = status_api.clone();
            let slot = today - chrono::Duration::days(i64::try_from(day).unwrap_or(i64::MAX));
            async move {
                let (request, status) = finished_request(&policy_name(index), slot, labelled)?;
                let name = request.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &request)
                    .await
                    .with_context(|| format!("creating BackupRequest {name}"))?;
                status_api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": status})),
                    )
                    .await
                    .with_context(|| format!("writing the status of BackupRequest {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(PARALLEL_REQUESTS)
        .try_collect::<()>()
        .await
}

/// A BackupRequest of `policy` for `slot` as its schedule would have created it, and the status
/// of a successful run of it. `labelled`: with the finished label and post-run annotation the
/// operator adds once the run's work is done.
fn finished_request(
    policy: &str,
    slot: DateTime<Utc>,
    labelled: bool,
) -> anyhow::Result<(BackupRequest, Value)> {
    let name = slot_request_name(policy, slot);
    let mut request: BackupRequest = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "BackupRequest",
        "metadata": {
            "name": name,
            "labels": {
                "backup.vertice.dev/policy": policy,
                "app.kubernetes.io/managed-by": "vertice-backup",
                SEEDED_LABEL: "true",
            },
            "annotations": {"backup.vertice.dev/scheduled-time": slot.to_rfc3339()},
        },
        "spec": {"backupRef": {"name": policy}},
    }))?;
    if labelled {
        request
            .labels_mut()
            .insert(labels::FINISHED.to_owned(), "true".to_owned());
        request
            .annotations_mut()
            .insert(labels::POST_RUN_DONE.to_owned(), "true".to_owned());
    }
    let started = slot + chrono::Duration::seconds(2);
    let completed = started + chrono::Duration::seconds(3);
    let backup_name = format!("postgres-{}", slot.format("%Y%m%dT%H%M%S.000Z"));
    let status = json!({
        "phase": "Succeeded",
        "startTime": started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "completionTime": completed.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "durationSeconds": 3.0,
        "attempts": 1,
        "result": {
            "backupName": backup_name,
            "location": format!("s3://bench/bench/{policy}/{backup_name}"),
            "rawSize": 40960,
            "storedSize": 8192,
        },
    });
    Ok((request, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn the_next_minute_is_whole_and_at_least_the_lead_away() {
        let lead = chrono::Duration::seconds(90);
        assert_eq!(
            next_minute_after(at("2026-11-30T07:10:20Z"), lead),
            at("2026-11-30T07:12:00Z")
        );
        assert_eq!(
            next_minute_after(at("2026-11-30T07:10:30Z"), lead),
            at("2026-11-30T07:12:00Z")
        );
        assert_eq!(
            next_minute_after(at("2026-11-30T23:59:50Z"), lead),
            at("2026-12-01T00:02:00Z")
        );
    }

    #[test]
    fn the_cron_fires_in_the_slot_minute_and_names_follow_the_convention() {
        let slot = at("2026-11-30T07:05:00Z");
        assert_eq!(daily_cron(slot), "5 7 * * *");
        let schedule = vertice_backup::api::schedule::Schedule::new(&daily_cron(slot), Some("UTC"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            schedule.next_after(slot - chrono::Duration::seconds(1)),
            Some(slot)
        );
        assert_eq!(
            slot_request_name("bench-0007", slot),
            format!("bench-0007-{}", slot.timestamp() / 60)
        );
    }

    #[test]
    fn policies_are_valid_objects_with_the_in_process_executor() {
        let target = Target {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "bench".into(),
            database: "tiny".into(),
            s3_endpoint: "http://127.0.0.1:9000".into(),
            bucket: "bench".into(),
        };
        let object = policy(42, at("2026-11-30T07:05:00Z"), &target);
        let parsed: VerticeBackup =
            serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.metadata.name.as_deref(), Some("bench-0042"));
        assert_eq!(object["spec"]["executor"]["type"], "InProcess");
        let (request, status) = finished_request("bench-0042", at("2026-11-29T03:00:00Z"), true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(
            request.labels().get(labels::FINISHED).map(String::as_str),
            Some("true")
        );
        assert!(
            request
                .metadata
                .name
                .is_some_and(|name| name.starts_with("bench-0042-"))
        );
        let (legacy, _) = finished_request("bench-0042", at("2026-11-29T03:00:00Z"), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!legacy.labels().contains_key(labels::FINISHED));
        assert!(!legacy.annotations().contains_key(labels::POST_RUN_DONE));
    }
}
