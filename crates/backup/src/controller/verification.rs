//! Restore drills on a VerticeBackup's `verification.schedule`: each slot creates a
//! RestoreRequest with `verify: true` that restores the newest successful backup into the
//! scratch server (a new database there), named `<vb>-verify-<unix minute>` so a restart never
//! creates a slot twice. The `Verified` condition and `lastVerifiedTime` follow the newest
//! finished drill's status, which the RestoreRequest controller writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use vertice_core::conditions::{self, ConditionStatus};

use crate::api::VerticeBackup;
use crate::api::restore_request::{
    RestoreRequest, RestoreRequestSpec, RestoreSource, RestoreTargetSpec, VerificationResult,
};
use crate::api::run::RunPhase;
use crate::api::schedule::{Schedule, ScheduleError};
use crate::api::target::EngineKind;
use crate::api::vertice_backup::BackupRecord;

use super::policy_status::to_chrono;
use super::scheduling::{
    MANAGED_BY, MANAGED_BY_LABEL, POLICY_LABEL, PROJECT_LABEL, SCHEDULED_TIME_ANNOTATION,
};

/// Condition type: whether the newest drill passed.
pub const VERIFIED: &str = "Verified";

/// The drill schedule, if `verification` is set and not suspended.
pub fn drill_schedule(backup: &VerticeBackup) -> Result<Option<Schedule>, ScheduleError> {
    let Some(verification) = &backup.spec.verification else {
        return Ok(None);
    };
    if verification.suspend == Some(true) {
        return Ok(None);
    }
    let zone = verification
        .time_zone
        .as_deref()
        .or(backup.spec.time_zone.as_deref());
    Schedule::new(&verification.schedule, zone).map(Some)
}

/// The deterministic name of the drill of `slot`.
pub fn drill_name(backup_name: &str, slot: DateTime<Utc>) -> String {
    format!("{backup_name}-verify-{}", slot.timestamp().div_euclid(60))
}

/// The slot a drill was created for.
pub fn drill_slot(drill: &RestoreRequest) -> Option<DateTime<Utc>> {
    drill
        .annotations()
        .get(SCHEDULED_TIME_ANNOTATION)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
}

/// Why no drill can be made for a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoDrill {
    /// No successful backup to restore yet.
    NoBackup,
    /// Redis drills restore into a private server, which a RestoreRequest cannot name yet.
    RedisUnsupported,
    /// The VerticeBackup was never stored (no UID).
    NotStored,
    /// The VerticeBackup has no database part (`target`) and no `verification.scratch`: a
    /// drill restores a database.
    NoDatabase,
}

/// The RestoreRequest of the drill of `slot`: the newest successful backup `backup_record`
/// from the policy's store, into a new database on the scratch server (default the target's
/// server), `verify: true`, owned by the VerticeBackup.
pub fn drill(
    backup: &VerticeBackup,
    record: Option<&BackupRecord>,
    slot: DateTime<Utc>,
) -> Result<RestoreRequest, NoDrill> {
    let record = record.ok_or(NoDrill::NoBackup)?;
    let owner = backup.controller_owner_ref(&()).ok_or(NoDrill::NotStored)?;
    let connection = backup
        .spec
        .verification
        .as_ref()
        .and_then(|verification| verification.scratch.clone())
        .or_else(|| {
            backup
                .spec
                .target
                .as_ref()
                .map(|target| target.connection.clone())
        })
        .ok_or(NoDrill::NoDatabase)?;
    if connection.engine == EngineKind::Redis {
        return Err(NoDrill::RedisUnsupported);
    }
    let name = backup.name_any();
    let project = super::project::policy_identity(backup).project;
    let spec = RestoreRequestSpec {
        source: RestoreSource {
            backup_request_ref: None,
            storage: Some(backup.spec.storage.clone()),
            backup_name: Some(record.name.clone()),
            encryption: Some(backup.spec.encryption.clone()),
        },
        target: RestoreTargetSpec {
            engine: connection.engine,
            host: Some(connection.host),
            port: connection.port,
            user: connection.user,
            password_secret_ref: connection.password_secret_ref,
            database: None,
            persistent_volume_claim: None,
            data_path: None,
        },
        overwrite: None,
        no_owner: None,
        no_privileges: None,
        verify: Some(true),
        executor: backup.spec.executor.clone(),
    };
    let mut drill = RestoreRequest::new(&drill_name(&name, slot), spec);
    drill.metadata = ObjectMeta {
        name: Some(drill_name(&name, slot)),
        namespace: backup.namespace(),
        labels: Some(BTreeMap::from([
            (POLICY_LABEL.to_owned(), name),
            (PROJECT_LABEL.to_owned(), project),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        ])),
        annotations: Some(BTreeMap::from([(
            SCHEDULED_TIME_ANNOTATION.to_owned(),
            slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )])),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    Ok(drill)
}

fn finished_time(drill: &RestoreRequest) -> Option<Time> {
    drill
        .status
        .as_ref()
        .and_then(|status| status.times.completion_time.clone())
        .or_else(|| drill.metadata.creation_timestamp.clone())
}

fn phase(drill: &RestoreRequest) -> RunPhase {
    drill
        .status
        .as_ref()
        .map(|status| status.phase)
        .unwrap_or_default()
}

fn passed(drill: &RestoreRequest) -> bool {
    phase(drill) == RunPhase::Succeeded
        && drill
            .status
            .as_ref()
            .and_then(|status| status.verification.as_ref())
            .is_some_and(|verification| verification.result == VerificationResult::Passed)
}

/// `Verified` and `lastVerifiedTime` from the drills: the newest finished drill decides the
/// condition; the time is the newest passed drill's completion (or `previous`, if newer).
pub fn verified(
    backup: &VerticeBackup,
    drills: &[RestoreRequest],
    previous: Option<Time>,
) -> (Condition, Option<Time>) {
    let last_passed = drills
        .iter()
        .filter(|drill| passed(drill))
        .filter_map(finished_time)
        .chain(previous)
        .max_by_key(|time| time.0);
    let newest = drills
        .iter()
        .filter(|drill| phase(drill).is_finished())
        .max_by(|a, b| {
            let (ta, tb) = (finished_time(a), finished_time(b));
            ta.map(|t| t.0)
                .cmp(&tb.map(|t| t.0))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
    let condition = match newest {
        Some(drill) if passed(drill) => conditions::new(
            VERIFIED,
            ConditionStatus::True,
            "DrillPassed",
            format!(
                "restore drill {} restored and matched the counts",
                drill.name_any()
            ),
        ),
        Some(drill) => {
            let why = drill
                .status
                .as_ref()
                .and_then(|status| {
                    status
                        .verification
                        .as_ref()
                        .and_then(|verification| verification.message.clone())
                        .or_else(|| {
                            status
                                .result
                                .as_ref()
                                .and_then(|result| result.error_message.clone())
                        })
                })
                .unwrap_or_default();
            conditions::new(
                VERIFIED,
                ConditionStatus::False,
                "DrillFailed",
                format!("restore drill {} failed: {why}", drill.name_any()),
            )
        }
        None if backup.spec.verification.is_none() => conditions::new(
            VERIFIED,
            ConditionStatus::Unknown,
            "NotConfigured",
            "no verification schedule",
        ),
        None => conditions::new(
            VERIFIED,
            ConditionStatus::Unknown,
            "NoDrillFinished",
            "no restore drill has finished yet",
        ),
    };
    (condition, last_passed)
}

/// The newest drill slot acted on: the newest drill's slot, else the VerticeBackup's creation.
pub fn last_drill_slot(
    backup: &VerticeBackup,
    drills: &[RestoreRequest],
    fallback: DateTime<Utc>,
) -> DateTime<Utc> {
    drills
        .iter()
        .filter_map(drill_slot)
        .max()
        .or_else(|| {
            backup
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(to_chrono)
        })
        .unwrap_or(fallback)
}
