//! Retention: which backups to keep and which to delete, and why.
//!
//! A pure function of (backups, policy, now) — no I/O — so `prune --dry-run` prints exactly what
//! `prune` would do, and the rules are tested exhaustively.
//!
//! Semantics (restic-style grandfather-father-son, plus an age cap and a safety floor):
//! - Only successful backups are candidates for the count rules; failed ones are deleted.
//! - `keepLast n` keeps the `n` newest successful backups.
//! - `keepHourly/Daily/Weekly/Monthly/Yearly n` walk the successful backups newest first and
//!   keep the newest backup of each of the `n` most recent periods (UTC hours, days, ISO weeks,
//!   months, years) that hold a backup — periods without a backup do not use up the count.
//! - With no count rule at all, every successful backup is kept (a policy that says nothing
//!   deletes nothing), subject to `maxAge`.
//! - `maxAge` deletes successful backups that ended longer ago than that, even when a count rule
//!   selected them.
//! - Safety floor, stronger than every rule above: the newest `minKeep` good backups are never
//!   deleted, where good means succeeded and — with `requireVerified`, i.e. when restore drills
//!   run — verified. Independently of `minKeep` (even 0), the newest good backup and the newest
//!   successful backup are never deleted: retention never deletes the last good backup
//!   (velero#9061, #5381).
//! - Future-dated backups: a backup that ended more than [`CLOCK_SKEW_TOLERANCE`] after `now`
//!   was made (or is judged) by a clock that is wrong. It is not a candidate for any rule — it
//!   takes no `keepLast` slot, no period, is not "the newest" for the floor, and `maxAge` does
//!   not apply — so it can never push present backups out. It is never deleted either: its data
//!   may be the only copy of a real database state, so it is kept with the reason
//!   [`KeepReason::FutureDated`] for a person to look at (and delete by hand if it is junk).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// How far past `now` a backup's end time may lie and still count as present: 5 minutes, the
/// default maximum clock skew of Kerberos V5 (MIT krb5 `clockskew`, 300 s) — the usual bound
/// for clocks meant to agree through NTP — and well inside the 15 minutes S3 itself tolerates
/// between a client's clock and its own (SigV4 `RequestTimeTooSkewed`).
pub const CLOCK_SKEW_TOLERANCE: Duration = Duration::from_secs(300);

/// What retention needs to know about one backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    /// The backup's name (its folder in the store).
    pub name: String,
    /// When the backup finished.
    pub end_time: DateTime<Utc>,
    /// Whether the backup completed (a manifest was written and the dump tool succeeded).
    pub succeeded: bool,
    /// Whether a restore drill or verification of this backup passed.
    pub verified: bool,
}

/// A retention policy. Every count is optional; `None` and `Some(0)` both disable a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Keep the n newest successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the n most recent hours that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the n most recent days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the n most recent ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the n most recent months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the n most recent years that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Delete backups that ended longer ago than this (whole seconds in serialized form).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "maxAgeSeconds",
        with = "duration_seconds"
    )]
    pub max_age: Option<Duration>,
    /// The number of newest good backups that are never deleted, whatever the other rules say.
    /// The newest good backup is protected even when this is 0.
    #[serde(default)]
    pub min_keep: u32,
    /// Whether "good" (for `minKeep`) also requires a passed verification — set when drills run.
    #[serde(default)]
    pub require_verified: bool,
}

/// Why a backup is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "rule")]
pub enum KeepReason {
    /// Among the `keepLast` newest successful backups (1 = the newest).
    Last {
        /// Position, newest first.
        rank: u32,
    },
    /// The newest backup of a period selected by a periodic rule.
    Period {
        /// Which rule.
        period: Period,
        /// The period, e.g. `2024-05-01` for a day, `2024-W18` for a week.
        bucket: String,
    },
    /// The policy has no count rule, so every successful backup is kept.
    NoCountRule,
    /// Among the newest `minKeep` good backups (1 = the newest).
    MinKeep {
        /// Position among good backups, newest first.
        rank: u32,
    },
    /// The newest good backup, never deleted.
    LastGood,
    /// The newest successful backup, never deleted (with `requireVerified` it may not be
    /// verified yet, but it may be the only restorable copy of the newest data).
    LastSuccessful,
    /// It ended after `now` plus [`CLOCK_SKEW_TOLERANCE`]: a clock was wrong. It is kept, and
    /// ignored by every other rule so it cannot push present backups out.
    FutureDated {
        /// How far past `now` it ended, in whole seconds.
        #[serde(rename = "aheadSeconds")]
        ahead_seconds: u64,
    },
}

/// A periodic (grandfather-father-son) rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Period {
    /// UTC hour.
    Hourly,
    /// UTC day.
    Daily,
    /// ISO 8601 week (UTC).
    Weekly,
    /// UTC calendar month.
    Monthly,
    /// UTC calendar year.
    Yearly,
}

/// Why a backup is deleted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "rule")]
pub enum DeleteReason {
    /// The backup did not succeed, so it cannot be restored.
    Failed,
    /// No count rule selected it.
    NotSelected,
    /// It ended longer ago than `maxAge`.
    OlderThanMaxAge {
        /// Its age in whole seconds at evaluation time.
        age_seconds: u64,
        /// The policy's `maxAge` in whole seconds.
        max_age_seconds: u64,
    },
}

/// The verdict on one backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict<R> {
    /// The backup's name.
    pub name: String,
    /// When it ended.
    pub end_time: DateTime<Utc>,
    /// Every rule that applies, never empty.
    pub reasons: Vec<R>,
}

/// What retention decided: every input backup is in exactly one of the two lists, each sorted
/// newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPlan {
    /// Backups to keep, with the rules that keep them.
    pub keep: Vec<Verdict<KeepReason>>,
    /// Backups to delete, with the rules that delete them.
    pub delete: Vec<Verdict<DeleteReason>>,
}

impl RetentionPolicy {
    /// Whether any count rule (keepLast or a periodic rule) is set to a positive number.
    pub fn has_count_rule(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(|count| count.unwrap_or(0) > 0)
    }

    fn periodic_rules(&self) -> [(Period, u32); 5] {
        [
            (Period::Hourly, self.keep_hourly.unwrap_or(0)),
            (Period::Daily, self.keep_daily.unwrap_or(0)),
            (Period::Weekly, self.keep_weekly.unwrap_or(0)),
            (Period::Monthly, self.keep_monthly.unwrap_or(0)),
            (Period::Yearly, self.keep_yearly.unwrap_or(0)),
        ]
    }
}

impl Period {
    /// The bucket `time` falls into, as a sortable label.
    pub fn bucket(self, time: DateTime<Utc>) -> String {
        match self {
            Period::Hourly => format!(
                "{:04}-{:02}-{:02}T{:02}",
                time.year(),
                time.month(),
                time.day(),
                time.hour()
            ),
            Period::Daily => format!("{:04}-{:02}-{:02}", time.year(), time.month(), time.day()),
            Period::Weekly => {
                let week = time.iso_week();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Monthly => format!("{:04}-{:02}", time.year(), time.month()),
            Period::Yearly => format!("{:04}", time.year()),
        }
    }
}

/// Decides which backups to keep and which to delete. Pure: the same inputs give the same plan.
///
/// Ties in `end_time` are broken by name (the greater name counts as newer), so the result does
/// not depend on the input order.
pub fn plan(
    backups: &[BackupSummary],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> RetentionPlan {
    // Indices sorted newest first; the rules below walk them in this order.
    let mut order: Vec<usize> = (0..backups.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&backups[a], &backups[b]);
        b.end_time
            .cmp(&a.end_time)
            .then_with(|| b.name.cmp(&a.name))
    });

    let mut keep_reasons: Vec<BTreeSet<KeepReason>> = vec![BTreeSet::new(); backups.len()];
    // Future-dated successful backups are set aside: kept, and seen by no other rule.
    let mut successful = Vec::new();
    for &i in &order {
        if !backups[i].succeeded {
            continue;
        }
        match future_by(backups[i].end_time, now) {
            Some(ahead) => {
                keep_reasons[i].insert(KeepReason::FutureDated {
                    ahead_seconds: ahead.as_secs(),
                });
            }
            None => successful.push(i),
        }
    }

    // Count rules: only successful backups are candidates.
    for (rank, &i) in successful
        .iter()
        .take(policy.keep_last.unwrap_or(0) as usize)
        .enumerate()
    {
        keep_reasons[i].insert(KeepReason::Last {
            rank: rank_u32(rank),
        });
    }
    for (period, count) in policy.periodic_rules() {
        let mut remaining = count;
        let mut last_bucket: Option<String> = None;
        for &i in &successful {
            if remaining == 0 {
                break;
            }
            let bucket = period.bucket(backups[i].end_time);
            if last_bucket.as_ref() != Some(&bucket) {
                keep_reasons[i].insert(KeepReason::Period {
                    period,
                    bucket: bucket.clone(),
                });
                last_bucket = Some(bucket);
                remaining -= 1;
            }
        }
    }
    if !policy.has_count_rule() {
        for &i in &successful {
            keep_reasons[i].insert(KeepReason::NoCountRule);
        }
    }

    // maxAge removes what the count rules selected, but not what the floor protects.
    let mut too_old: Vec<Option<DeleteReason>> = vec![None; backups.len()];
    if let Some(max_age) = policy.max_age {
        for &i in &successful {
            let age = now.signed_duration_since(backups[i].end_time);
            // A backup from the future (clock skew) has a negative age: it is young.
            let age = age.to_std().unwrap_or(Duration::ZERO);
            if age > max_age {
                too_old[i] = Some(DeleteReason::OlderThanMaxAge {
                    age_seconds: age.as_secs(),
                    max_age_seconds: max_age.as_secs(),
                });
                keep_reasons[i].clear();
            }
        }
    }

    // The safety floor, applied last so nothing overrides it.
    let good: Vec<usize> = successful
        .iter()
        .copied()
        .filter(|&i| !policy.require_verified || backups[i].verified)
        .collect();
    for (rank, &i) in good.iter().take(policy.min_keep as usize).enumerate() {
        keep_reasons[i].insert(KeepReason::MinKeep {
            rank: rank_u32(rank),
        });
    }
    if let Some(&i) = good.first() {
        keep_reasons[i].insert(KeepReason::LastGood);
    }
    if let Some(&i) = successful.first() {
        keep_reasons[i].insert(KeepReason::LastSuccessful);
    }

    let mut result = RetentionPlan::default();
    for i in order {
        let backup = &backups[i];
        if !keep_reasons[i].is_empty() {
            result.keep.push(Verdict {
                name: backup.name.clone(),
                end_time: backup.end_time,
                reasons: std::mem::take(&mut keep_reasons[i]).into_iter().collect(),
            });
        } else {
            let reason = if !backup.succeeded {
                DeleteReason::Failed
            } else if let Some(reason) = too_old[i].take() {
                reason
            } else {
                DeleteReason::NotSelected
            };
            result.delete.push(Verdict {
                name: backup.name.clone(),
                end_time: backup.end_time,
                reasons: vec![reason],
            });
        }
    }
    result
}

/// How far past `now` `end_time` lies, when that is beyond [`CLOCK_SKEW_TOLERANCE`].
pub fn future_by(end_time: DateTime<Utc>, now: DateTime<Utc>) -> Option<Duration> {
    let ahead = end_time.signed_duration_since(now).to_std().ok()?;
    (ahead > CLOCK_SKEW_TOLERANCE).then_some(ahead)
}

fn rank_u32(zero_based: usize) -> u32 {
    u32::try_from(zero_based.saturating_add(1)).unwrap_or(u32::MAX)
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last { rank } => write!(f, "keepLast (#{rank} newest)"),
            KeepReason::Period { period, bucket } => write!(f, "{period} ({bucket})"),
            KeepReason::NoCountRule => write!(f, "no count rule: all successful backups are kept"),
            KeepReason::MinKeep { rank } => write!(f, "minKeep (#{rank} newest good backup)"),
            KeepReason::LastGood => write!(f, "newest good backup, never deleted"),
            KeepReason::LastSuccessful => write!(f, "newest successful backup, never deleted"),
            KeepReason::FutureDated { ahead_seconds } => write!(
                f,
                "FUTURE-DATED: ends {ahead_seconds}s after now (a clock is wrong); kept and \
                 ignored by every rule — check it and delete it by hand if it is not needed"
            ),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Period::Hourly => "keepHourly",
            Period::Daily => "keepDaily",
            Period::Weekly => "keepWeekly",
            Period::Monthly => "keepMonthly",
            Period::Yearly => "keepYearly",
        })
    }
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteReason::Failed => write!(f, "failed backup"),
            DeleteReason::NotSelected => write!(f, "selected by no keep rule"),
            DeleteReason::OlderThanMaxAge {
                age_seconds,
                max_age_seconds,
            } => write!(f, "older than maxAge ({age_seconds}s > {max_age_seconds}s)"),
        }
    }
}

/// `Option<Duration>` as whole seconds, the form a CLI flag or a CRD field converts to easily.
mod duration_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&duration.as_secs()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests;
