//! Property tests for the retention function: whatever the backups and the policy, the plan
//! partitions the input, never deletes the protected backups, and is stable when re-applied.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use vertice_backup::retention::{
    BackupSummary, CLOCK_SKEW_TOLERANCE, DeleteReason, KeepReason, RetentionPolicy, future_by, plan,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()
}

/// Backups spread over ~3 years before `now` (and a little after, for clock skew), with
/// duplicates of end times and a mix of failed and verified ones. Names are unique.
fn backups() -> impl Strategy<Value = Vec<BackupSummary>> {
    prop::collection::vec(
        (
            -3_600i64..(3 * 365 * 86_400),
            any::<bool>(),
            any::<bool>(),
            0u8..4,
        ),
        0..60,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (seconds_ago, failed_coin, verified, cluster))| {
                // Cluster some end times on hour boundaries so periodic rules see ties.
                let seconds_ago = if cluster == 0 {
                    seconds_ago - seconds_ago.rem_euclid(3_600)
                } else {
                    seconds_ago
                };
                let succeeded = !(failed_coin && cluster == 1);
                BackupSummary {
                    name: format!("backup-{i:03}"),
                    end_time: now() - chrono::Duration::seconds(seconds_ago),
                    succeeded,
                    verified: succeeded && verified,
                }
            })
            .collect()
    })
}

fn count() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (0u32..6).prop_map(Some)]
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        (count(), count(), count(), count(), count(), count()),
        prop_oneof![
            Just(None),
            (1u64..(2 * 365 * 86_400)).prop_map(|s| Some(Duration::from_secs(s)))
        ],
        0u32..5,
        any::<bool>(),
    )
        .prop_map(
            |(
                (last, hourly, daily, weekly, monthly, yearly),
                max_age,
                min_keep,
                require_verified,
            )| {
                RetentionPolicy {
                    keep_last: last,
                    keep_hourly: hourly,
                    keep_daily: daily,
                    keep_weekly: weekly,
                    keep_monthly: monthly,
                    keep_yearly: yearly,
                    max_age,
                    min_keep,
                    require_verified,
                }
            },
        )
}

/// Whether `backup` ended too far after `now()` to count as present.
fn future_dated(backup: &BackupSummary) -> bool {
    future_by(backup.end_time, now()).is_some()
}

/// Backups sorted newest first, with the same tie-break as the retention function.
fn newest_first(backups: &[BackupSummary]) -> Vec<&BackupSummary> {
    let mut sorted: Vec<_> = backups.iter().collect();
    sorted.sort_by(|a, b| {
        b.end_time
            .cmp(&a.end_time)
            .then_with(|| b.name.cmp(&a.name))
    });
    sorted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plan_partitions_the_input(backups in backups(), policy in policy()) {
        let result = plan(&backups, &policy, now());
        let kept: BTreeSet<_> = result.keep.iter().map(|v| v.name.clone()).collect();
        let deleted: BTreeSet<_> = result.delete.iter().map(|v| v.name.clone()).collect();
        prop_assert!(kept.is_disjoint(&deleted));
        let all: BTreeSet<_> = backups.iter().map(|b| b.name.clone()).collect();
        prop_assert_eq!(kept.union(&deleted).cloned().collect::<BTreeSet<_>>(), all);
        prop_assert_eq!(result.keep.len() + result.delete.len(), backups.len());
        prop_assert!(result.keep.iter().all(|v| !v.reasons.is_empty()));
        prop_assert!(result.delete.iter().all(|v| !v.reasons.is_empty()));
    }

    #[test]
    fn never_deletes_the_newest_min_keep_good_backups(backups in backups(), policy in policy()) {
        let result = plan(&backups, &policy, now());
        let deleted: BTreeSet<_> = result.delete.iter().map(|v| v.name.as_str()).collect();
        let good: Vec<_> = newest_first(&backups)
            .into_iter()
            .filter(|b| b.succeeded && !future_dated(b) && (!policy.require_verified || b.verified))
            .collect();
        for backup in good.iter().take(policy.min_keep.max(1) as usize) {
            prop_assert!(!deleted.contains(backup.name.as_str()), "deleted protected {}", backup.name);
        }
        // The last good backup survives even a policy that would delete everything.
        if backups.iter().any(|b| b.succeeded) {
            prop_assert!(!result.keep.is_empty());
        }
    }

    #[test]
    fn failed_backups_are_always_deleted(backups in backups(), policy in policy()) {
        let result = plan(&backups, &policy, now());
        let kept: BTreeSet<_> = result.keep.iter().map(|v| v.name.as_str()).collect();
        for backup in backups.iter().filter(|b| !b.succeeded) {
            prop_assert!(!kept.contains(backup.name.as_str()));
        }
        for verdict in &result.delete {
            let failed = backups.iter().any(|b| b.name == verdict.name && !b.succeeded);
            prop_assert_eq!(failed, verdict.reasons.contains(&DeleteReason::Failed));
        }
    }

    #[test]
    fn keep_last_alone_keeps_exactly_the_n_newest(backups in backups(), n in 1u32..10) {
        let policy = RetentionPolicy { keep_last: Some(n), ..Default::default() };
        let result = plan(&backups, &policy, now());
        // Every future-dated backup (they sort first), then the n newest present ones.
        let successful: Vec<_> = newest_first(&backups).into_iter().filter(|b| b.succeeded).collect();
        let expected: Vec<_> = successful
            .iter()
            .filter(|b| future_dated(b))
            .chain(successful.iter().filter(|b| !future_dated(b)).take(n as usize))
            .map(|b| b.name.clone())
            .collect();
        let kept: Vec<_> = result.keep.iter().map(|v| v.name.clone()).collect();
        prop_assert_eq!(kept, expected);
    }

    #[test]
    fn applying_the_plan_again_deletes_nothing_more(backups in backups(), policy in policy()) {
        let first = plan(&backups, &policy, now());
        let kept: BTreeSet<_> = first.keep.iter().map(|v| v.name.as_str()).collect();
        let survivors: Vec<_> = backups.iter().filter(|b| kept.contains(b.name.as_str())).cloned().collect();
        let second = plan(&survivors, &policy, now());
        prop_assert!(second.delete.is_empty(), "second pass deleted {:?}", second.delete);
    }

    #[test]
    fn input_order_does_not_matter(backups in backups(), policy in policy()) {
        let mut reversed = backups.clone();
        reversed.reverse();
        prop_assert_eq!(plan(&backups, &policy, now()), plan(&reversed, &policy, now()));
    }

    #[test]
    fn max_age_alone_keeps_exactly_the_young_plus_the_last_good(
        backups in backups(),
        max_age_seconds in 1u64..(2 * 365 * 86_400),
    ) {
        let max_age = Duration::from_secs(max_age_seconds);
        let policy = RetentionPolicy { max_age: Some(max_age), ..Default::default() };
        let result = plan(&backups, &policy, now());
        let newest_successful = newest_first(&backups)
            .into_iter()
            .find(|b| b.succeeded && !future_dated(b))
            .map(|b| b.name.clone());
        for backup in &backups {
            let young = (now() - backup.end_time).to_std().unwrap_or(Duration::ZERO) <= max_age;
            let should_keep = backup.succeeded && (young || Some(&backup.name) == newest_successful.as_ref());
            let is_kept = result.keep.iter().any(|v| v.name == backup.name);
            prop_assert_eq!(should_keep, is_kept, "{:?}", backup);
        }
    }

    /// Adding backups dated past `now` (beyond the skew tolerance) changes no verdict on the
    /// others, and every one of them is kept, flagged as future-dated.
    #[test]
    fn future_dated_backups_change_nothing_else_and_are_kept(
        backups in backups(),
        policy in policy(),
        ahead in prop::collection::vec(
            (CLOCK_SKEW_TOLERANCE.as_secs() + 1)..(5 * 365 * 86_400u64),
            1..5,
        ),
    ) {
        let present: Vec<_> = backups.iter().filter(|b| !future_dated(b)).cloned().collect();
        let mut with_future = present.clone();
        for (i, seconds) in ahead.iter().enumerate() {
            with_future.push(BackupSummary {
                name: format!("future-{i}"),
                end_time: now() + chrono::Duration::seconds(*seconds as i64),
                succeeded: true,
                verified: i % 2 == 0,
            });
        }
        let alone = plan(&present, &policy, now());
        let mixed = plan(&with_future, &policy, now());
        let deleted_alone: Vec<_> = alone.delete.iter().map(|v| &v.name).collect();
        let deleted_mixed: Vec<_> = mixed.delete.iter().map(|v| &v.name).collect();
        prop_assert_eq!(deleted_alone, deleted_mixed);
        for (i, seconds) in ahead.iter().enumerate() {
            let name = format!("future-{i}");
            let verdict = mixed.keep.iter().find(|v| v.name == name);
            prop_assert!(verdict.is_some(), "{} was not kept", name);
            prop_assert_eq!(
                &verdict.map(|v| v.reasons.clone()).unwrap_or_default(),
                &vec![KeepReason::FutureDated { ahead_seconds: *seconds }]
            );
        }
    }
}
