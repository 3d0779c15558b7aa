//! Amazon RDS through the official AWS SDK for Rust: create a DB snapshot, wait until it is
//! `available`, delete one. The client takes explicit credentials only (read from the
//! config's file), never the environment, a profile or instance metadata.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_rds::Client;
use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::config::timeout::TimeoutConfig;
use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_rds::types::{DbSnapshot, Tag};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::error::{SnapshotError, SnapshotErrorKind};
use super::naming::{is_ours, snapshot_id, snapshot_tags};
use super::poll::next_delay;
use super::{SnapshotAccess, SnapshotConfig, SnapshotProvider, SnapshotRecord};
use crate::error::BackupError;
use crate::store::{named_value, read_credentials_file};

const ACCESS_KEY_NAMES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "accessKeyId", "access_key_id"];
const SECRET_KEY_NAMES: [&str; 3] = [
    "AWS_SECRET_ACCESS_KEY",
    "secretAccessKey",
    "secret_access_key",
];
const SESSION_TOKEN_NAMES: [&str; 3] = ["AWS_SESSION_TOKEN", "sessionToken", "session_token"];

/// A client for `region` (through `endpoint` when given) signing with the keys in
/// `credentials_file`. Errors: `Config` when the file cannot be read or lacks a key.
fn client(
    credentials_file: &Path,
    region: &str,
    endpoint: Option<&str>,
) -> Result<Client, BackupError> {
    let lines = read_credentials_file(credentials_file)?;
    let (Some(access), Some(secret)) = (
        named_value(&lines, &ACCESS_KEY_NAMES),
        named_value(&lines, &SECRET_KEY_NAMES),
    ) else {
        return Err(BackupError::Config(format!(
            "the snapshot credentials {} hold no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            credentials_file.display()
        )));
    };
    let token = named_value(&lines, &SESSION_TOKEN_NAMES);
    let credentials = Credentials::new(access, secret, token, None, "vertice-backup");
    let mut config = aws_sdk_rds::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        // The SDK retries throttling and 5xx answers itself, with backoff.
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

/// Takes a snapshot of `config.instance_id` for backup `backup_name`, tagged with the
/// config's tags, the run's `labels` and the owner tags (see [`super::naming`]), and waits
/// until RDS reports it `available`, looking again with bounded exponential backoff (see
/// [`super::poll`]) until `config.timeout()`.
///
/// A snapshot that ends `failed` is deleted (it is ours, holds nothing usable, and no manifest
/// will name it, so nothing else would ever delete it). One still `creating` at the deadline
/// (or when `cancel` fires) is deleted if RDS allows it; RDS refuses to delete a snapshot that
/// is being created, and then it is left, tagged with its backup's name, and a warning names
/// it.
///
/// Errors: `Config` (credentials file, tags), `Snapshot` with kind `Forbidden`,
/// `Unavailable`, `NotFound` (no such instance), `InvalidConfig`, `Failed` or `TimedOut`;
/// `Cancelled`.
pub async fn take_snapshot(
    config: &SnapshotConfig,
    backup_name: &str,
    labels: &BTreeMap<String, String>,
    cancel: &CancellationToken,
) -> Result<SnapshotRecord, BackupError> {
    let SnapshotProvider::Aws = config.provider;
    let client = client(
        &config.credentials_file,
        &config.region,
        config.endpoint.as_deref(),
    )?;
    let tags = snapshot_tags(&config.tags, labels, backup_name)?;
    let id = snapshot_id(backup_name, &random_suffix());
    let requested_at = Utc::now();
    let started = Instant::now();
    let what = format!(
        "creating snapshot {id} of RDS instance {}",
        config.instance_id
    );
    let created = client
        .create_db_snapshot()
        .db_instance_identifier(&config.instance_id)
        .db_snapshot_identifier(&id)
        .set_tags(Some(to_aws_tags(&tags)))
        .send()
        .await
        .map_err(|error| SnapshotError::from_sdk(&what, &error))?;
    let mut snapshot = created.db_snapshot;
    let deadline = started + config.timeout();
    let mut delay = None;
    let snapshot = loop {
        match snapshot.as_ref().and_then(DbSnapshot::status) {
            Some("available") => {
                if let Some(available) = snapshot {
                    break available;
                }
            }
            Some("failed") => {
                let failure = SnapshotError::new(
                    SnapshotErrorKind::Failed,
                    format!(
                        "RDS reported snapshot {id} of instance {} as failed; it was deleted",
                        config.instance_id
                    ),
                );
                discard(&client, &id).await;
                return Err(failure.into());
            }
            _ => {}
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            discard(&client, &id).await;
            return Err(SnapshotError::new(
                SnapshotErrorKind::TimedOut,
                format!(
                    "snapshot {id} of RDS instance {} was not available after {} s \
                     (status {:?})",
                    config.instance_id,
                    config.timeout().as_secs(),
                    snapshot
                        .as_ref()
                        .and_then(DbSnapshot::status)
                        .unwrap_or("unknown")
                ),
            )
            .into());
        }
        let wait = next_delay(delay, remaining);
        delay = Some(wait);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => {
                discard(&client, &id).await;
                return Err(BackupError::Cancelled);
            }
        }
        snapshot = describe(&client, &id).await?;
    };
    let created_at = snapshot
        .snapshot_create_time()
        .and_then(|time| DateTime::from_timestamp(time.secs(), time.subsec_nanos()))
        .unwrap_or(requested_at);
    Ok(SnapshotRecord {
        provider: config.provider,
        arn: snapshot.db_snapshot_arn().unwrap_or_default().to_owned(),
        snapshot_id: id,
        instance_id: config.instance_id.clone(),
        engine: snapshot.engine().unwrap_or_default().to_owned(),
        engine_version: snapshot.engine_version().unwrap_or_default().to_owned(),
        region: config.region.clone(),
        endpoint: config.endpoint.clone(),
        created_at,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`delete_snapshot`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The snapshot was deleted.
    Deleted,
    /// It was already gone (deleted by hand or by an earlier prune that stopped midway).
    AlreadyGone,
    /// It exists but does not carry our owner tags for this backup: left alone.
    NotOurs,
}

/// Deletes the snapshot `record` names, for backup `backup_name`, but only if its tags say
/// vertice-backup made it for that backup ([`super::naming::is_ours`]): a manifest naming
/// someone else's snapshot never gets it deleted. A snapshot that is already gone is not an
/// error. Errors: `Config` (credentials file), `Snapshot` (`Forbidden`, `Unavailable`, …).
pub async fn delete_snapshot(
    access: &SnapshotAccess,
    record: &SnapshotRecord,
    backup_name: &str,
) -> Result<DeleteOutcome, BackupError> {
    let endpoint = access.endpoint.as_deref().or(record.endpoint.as_deref());
    let client = client(&access.credentials_file, &record.region, endpoint)?;
    let Some(snapshot) = describe(&client, &record.snapshot_id).await? else {
        return Ok(DeleteOutcome::AlreadyGone);
    };
    let arn = snapshot.db_snapshot_arn().unwrap_or(&record.arn);
    let what = format!("reading the tags of snapshot {}", record.snapshot_id);
    let listed = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|error| SnapshotError::from_sdk(&what, &error))?;
    let tags: BTreeMap<String, String> = listed
        .tag_list()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
        .collect();
    if arn != record.arn || !is_ours(&tags, backup_name) {
        return Ok(DeleteOutcome::NotOurs);
    }
    let what = format!("deleting snapshot {}", record.snapshot_id);
    match client
        .delete_db_snapshot()
        .db_snapshot_identifier(&record.snapshot_id)
        .send()
        .await
    {
        Ok(_) => Ok(DeleteOutcome::Deleted),
        Err(error) => {
            let error = SnapshotError::from_sdk(&what, &error);
            if error.kind == SnapshotErrorKind::NotFound {
                Ok(DeleteOutcome::AlreadyGone)
            } else {
                Err(error.into())
            }
        }
    }
}

/// The snapshot `id`, or `None` when RDS has no such snapshot.
async fn describe(client: &Client, id: &str) -> Result<Option<DbSnapshot>, BackupError> {
    let what = format!("reading the state of snapshot {id}");
    match client
        .describe_db_snapshots()
        .db_snapshot_identifier(id)
        .send()
        .await
    {
        Ok(answer) => Ok(answer.db_snapshots.and_then(|list| list.into_iter().next())),
        Err(error) => {
            let error = SnapshotError::from_sdk(&what, &error);
            if error.kind == SnapshotErrorKind::NotFound {
                Ok(None)
            } else {
                Err(error.into())
            }
        }
    }
}

/// Deletes a snapshot this run made and will not record, as far as RDS allows; what is left is
/// logged (by identifier: no secret is involved).
async fn discard(client: &Client, id: &str) {
    if let Err(error) = client
        .delete_db_snapshot()
        .db_snapshot_identifier(id)
        .send()
        .await
    {
        let error = SnapshotError::from_sdk(&format!("deleting snapshot {id}"), &error);
        if error.kind != SnapshotErrorKind::NotFound {
            tracing::warn!(
                snapshot = id,
                %error,
                "the failed run's snapshot could not be deleted; delete it by hand once RDS allows"
            );
        }
    }
}

fn to_aws_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

/// Eight random hex digits.
fn random_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
