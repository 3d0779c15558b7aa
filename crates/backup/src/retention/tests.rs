//! The retention rules, input by input.

use super::*;
use chrono::TimeZone;

fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
        .single()
        .unwrap_or_default()
}

fn ok(name: &str, end_time: DateTime<Utc>) -> BackupSummary {
    BackupSummary {
        name: name.to_owned(),
        end_time,
        succeeded: true,
        verified: false,
    }
}

fn kept(plan: &RetentionPlan) -> Vec<&str> {
    plan.keep.iter().map(|v| v.name.as_str()).collect()
}

fn deleted(plan: &RetentionPlan) -> Vec<&str> {
    plan.delete.iter().map(|v| v.name.as_str()).collect()
}

#[test]
fn empty_policy_keeps_everything_successful_and_deletes_failures() {
    let mut failed = ok("f", at(2024, 1, 2, 0));
    failed.succeeded = false;
    let backups = vec![
        ok("a", at(2024, 1, 1, 0)),
        failed,
        ok("b", at(2024, 1, 3, 0)),
    ];
    let plan = plan(&backups, &RetentionPolicy::default(), at(2024, 2, 1, 0));
    assert_eq!(kept(&plan), ["b", "a"]);
    assert_eq!(deleted(&plan), ["f"]);
    assert_eq!(plan.delete[0].reasons, [DeleteReason::Failed]);
}

#[test]
fn keep_last_keeps_the_newest() {
    let backups: Vec<_> = (1..=5)
        .map(|d| ok(&format!("d{d}"), at(2024, 1, d, 0)))
        .collect();
    let policy = RetentionPolicy {
        keep_last: Some(2),
        ..Default::default()
    };
    let plan = plan(&backups, &policy, at(2024, 2, 1, 0));
    assert_eq!(kept(&plan), ["d5", "d4"]);
    assert_eq!(deleted(&plan), ["d3", "d2", "d1"]);
    assert_eq!(plan.delete[0].reasons, [DeleteReason::NotSelected]);
}

#[test]
fn daily_keeps_newest_of_each_day_and_skips_empty_days() {
    // Two backups on Jan 5, none on Jan 4, one on Jan 3, two on Jan 1.
    let backups = vec![
        ok("5a", at(2024, 1, 5, 1)),
        ok("5b", at(2024, 1, 5, 23)),
        ok("3", at(2024, 1, 3, 12)),
        ok("1a", at(2024, 1, 1, 2)),
        ok("1b", at(2024, 1, 1, 3)),
    ];
    let policy = RetentionPolicy {
        keep_daily: Some(3),
        ..Default::default()
    };
    let plan = plan(&backups, &policy, at(2024, 1, 6, 0));
    assert_eq!(kept(&plan), ["5b", "3", "1b"]);
    assert_eq!(
        plan.keep[1].reasons,
        [KeepReason::Period {
            period: Period::Daily,
            bucket: "2024-01-03".into()
        }]
    );
}

#[test]
fn grandfather_father_son() {
    // One backup a day for all of 2023 and January 2024.
    let start = at(2023, 1, 1, 3);
    let backups: Vec<_> = (0..396)
        .map(|d| ok(&format!("b{d:03}"), start + chrono::Duration::days(d)))
        .collect();
    let policy = RetentionPolicy {
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_monthly: Some(12),
        keep_yearly: Some(2),
        ..Default::default()
    };
    let plan = plan(&backups, &policy, at(2024, 2, 1, 0));
    // 7 days; weeks whose newest backup is not among those days; month ends; year ends.
    let names = kept(&plan);
    assert!(
        names.len() >= 12 && names.len() <= 7 + 4 + 12 + 2,
        "{names:?}"
    );
    // The last backup of 2023 (Dec 31) is kept by the yearly and monthly rules.
    let dec31 = plan.keep.iter().find(|v| v.end_time == at(2023, 12, 31, 3));
    assert!(dec31.is_some_and(|v| v.reasons.iter().any(|r| matches!(
        r,
        KeepReason::Period {
            period: Period::Yearly,
            ..
        }
    ))));
    assert_eq!(plan.keep.len() + plan.delete.len(), backups.len());
}

#[test]
fn weekly_uses_iso_weeks() {
    // 2024-12-30 is Monday of ISO week 2025-W01.
    assert_eq!(Period::Weekly.bucket(at(2024, 12, 30, 0)), "2025-W01");
    assert_eq!(Period::Weekly.bucket(at(2024, 12, 29, 0)), "2024-W52");
}

#[test]
fn max_age_deletes_old_backups_but_never_the_last_good_one() {
    let backups = vec![ok("old", at(2024, 1, 1, 0)), ok("older", at(2023, 1, 1, 0))];
    let policy = RetentionPolicy {
        max_age: Some(Duration::from_secs(86_400)),
        ..Default::default()
    };
    let plan = plan(&backups, &policy, at(2024, 6, 1, 0));
    assert_eq!(kept(&plan), ["old"]);
    assert!(plan.keep[0].reasons.contains(&KeepReason::LastGood));
    assert!(matches!(
        plan.delete[0].reasons[0],
        DeleteReason::OlderThanMaxAge {
            max_age_seconds: 86_400,
            ..
        }
    ));
}

#[test]
fn min_keep_with_verification_protects_verified_backups() {
    let mut verified = ok("verified", at(2024, 1, 1, 0));
    verified.verified = true;
    let backups = vec![
        ok("new-unverified", at(2024, 1, 3, 0)),
        ok("mid-unverified", at(2024, 1, 2, 0)),
        verified,
    ];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        min_keep: 1,
        require_verified: true,
        ..Default::default()
    };
    let plan = plan(&backups, &policy, at(2024, 1, 4, 0));
    assert_eq!(kept(&plan), ["new-unverified", "verified"]);
    assert_eq!(deleted(&plan), ["mid-unverified"]);
}

#[test]
fn all_failed_deletes_all() {
    let mut a = ok("a", at(2024, 1, 1, 0));
    a.succeeded = false;
    let plan = plan(&[a], &RetentionPolicy::default(), at(2024, 1, 2, 0));
    assert!(plan.keep.is_empty());
    assert_eq!(deleted(&plan), ["a"]);
}

#[test]
fn a_backup_from_the_future_pushes_no_present_backup_out() {
    let now = at(2024, 6, 1, 12);
    let backups = vec![
        ok("future", now + chrono::Duration::days(365)),
        ok("today", now - chrono::Duration::hours(1)),
        ok("yesterday", now - chrono::Duration::days(1)),
        ok("last-week", now - chrono::Duration::days(7)),
    ];
    let keep_last_1 = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let result = plan(&backups, &keep_last_1, now);
    assert_eq!(kept(&result), ["future", "today"]);
    assert_eq!(deleted(&result), ["yesterday", "last-week"]);
    assert_eq!(
        result.keep[0].reasons,
        [KeepReason::FutureDated {
            ahead_seconds: 365 * 86_400
        }]
    );
    assert!(
        result.keep[1]
            .reasons
            .contains(&KeepReason::Last { rank: 1 })
    );

    // maxAge neither expires it nor lets it stand in for the newest good backup.
    let max_age = RetentionPolicy {
        max_age: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let result = plan(&backups, &max_age, now + chrono::Duration::days(30));
    assert_eq!(kept(&result), ["future", "today"]);
    assert!(result.keep[1].reasons.contains(&KeepReason::LastGood));
}

#[test]
fn skew_within_the_tolerance_is_the_present() {
    let now = at(2024, 6, 1, 12);
    let tolerance = chrono::Duration::from_std(CLOCK_SKEW_TOLERANCE).unwrap_or_default();
    let backups = vec![
        ok("edge", now + tolerance),
        ok("just-past", now + tolerance + chrono::Duration::seconds(1)),
        ok("older", now - chrono::Duration::hours(1)),
    ];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let result = plan(&backups, &policy, now);
    assert_eq!(kept(&result), ["just-past", "edge"]);
    assert_eq!(deleted(&result), ["older"]);
    assert_eq!(
        result.keep[0].reasons,
        [KeepReason::FutureDated { ahead_seconds: 301 }]
    );
}

#[test]
fn policy_serde_uses_crd_field_names() {
    let policy: RetentionPolicy = serde_json::from_str(
        r#"{"keepLast":3,"keepDaily":7,"maxAgeSeconds":3600,"minKeep":2,"requireVerified":true}"#,
    )
    .unwrap_or_default();
    assert_eq!(policy.keep_last, Some(3));
    assert_eq!(policy.keep_daily, Some(7));
    assert_eq!(policy.max_age, Some(Duration::from_secs(3600)));
    assert_eq!(policy.min_keep, 2);
    assert!(policy.require_verified);
}
