//! The VerticeBackup controller's schedule against the REAL kube-apiserver on an injected
//! clock: a due slot becomes exactly one BackupRequest with the right name, labels, annotation
//! and owner; restarts never repeat a slot; DST changes neither double nor lose a run;
//! `suspend`, `concurrencyPolicy` and `startingDeadlineSeconds` behave as a CronJob's. The
//! runs' status is written by the test, as the BackupRequest controller would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_harness.rs"]
mod harness;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use harness::{Harness, condition, eventually, hour_after, rfc3339, spec};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const ENDPOINT: &str = "http://127.0.0.1:9";

fn minute(slot: DateTime<Utc>) -> i64 {
    slot.timestamp() / 60
}

fn status_time(backup: &vertice_backup::api::VerticeBackup, field: &str) -> Option<String> {
    let status = serde_json::to_value(backup.status.as_ref()?).ok()?;
    status.get(field)?.as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_slot_creates_exactly_one_run_and_restarts_never_repeat_it() -> anyhow::Result<()> {
    let slot = hour_after(TimeDelta::zero());
    let mut h = Harness::start("vb-slot", slot - TimeDelta::seconds(90)).await?;
    let created = h
        .create_backup("nightly", spec("0 * * * *", ENDPOINT, "backups", "app"))
        .await?;
    h.wait_status("nightly", "next slot", |b| {
        status_time(b, "nextScheduleTime") == Some(rfc3339(slot))
    })
    .await?;
    assert!(
        h.runs_of("nightly").await?.is_empty(),
        "nothing is due before the slot"
    );

    h.set_clock(slot + TimeDelta::seconds(5));
    let name = format!("nightly-{}", minute(slot));
    let run = eventually("the slot's run", || async { h.runs.get(&name).await.ok() }).await?;
    assert_eq!(
        run.labels()
            .get("backup.vertice.dev/policy")
            .map(String::as_str),
        Some("nightly")
    );
    assert_eq!(
        run.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("vertice-backup")
    );
    assert_eq!(
        run.labels().get("vertice.dev/project"),
        Some(&h.namespace().to_owned())
    );
    assert_eq!(
        run.annotations().get("backup.vertice.dev/scheduled-time"),
        Some(&rfc3339(slot))
    );
    let owner = &run.owner_references()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (created.uid().unwrap_or_default().as_str(), Some(true))
    );
    assert_eq!(
        run.spec.backup_ref.as_ref().map(|r| r.name.as_str()),
        Some("nightly")
    );
    let backup = h
        .wait_status("nightly", "the slot recorded", |b| {
            status_time(b, "lastScheduleTime") == Some(rfc3339(slot))
        })
        .await?;
    let status = backup.status.clone().unwrap_or_default();
    assert_eq!(
        status
            .active
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>(),
        vec![name.clone()]
    );
    assert_eq!(
        status_time(&backup, "nextScheduleTime"),
        Some(rfc3339(slot + TimeDelta::hours(1)))
    );

    // A restart that lost the status (a crash before the status write) acts on the same slot
    // again: the deterministic name lets only one run exist.
    h.stop_operator().await?;
    h.backups
        .patch_status(
            "nightly",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"status": {"lastScheduleTime": null}})),
        )
        .await?;
    h.start_operator().await?;
    h.poke();
    h.wait_status("nightly", "the slot recorded again", |b| {
        status_time(b, "lastScheduleTime") == Some(rfc3339(slot))
    })
    .await?;
    assert_eq!(h.live_run_names("nightly").await?, vec![name.clone()]);

    // Down across three slots: the newest runs once, the two before are counted as missed.
    h.set_run_status(&name, json!({"phase": "Succeeded"}))
        .await?;
    h.stop_operator().await?;
    let later = slot + TimeDelta::hours(3);
    h.clock.set(later + TimeDelta::minutes(10));
    h.start_operator().await?;
    h.poke();
    let newest = format!("nightly-{}", minute(later));
    let backup = h
        .wait_status("nightly", "the newest slot run after the downtime", |b| {
            status_time(b, "lastScheduleTime") == Some(rfc3339(later))
        })
        .await?;
    assert_eq!(backup.status.and_then(|s| s.missed_schedules), Some(2));
    assert_eq!(h.live_run_names("nightly").await?, vec![name, newest]);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dst_changes_neither_double_nor_lose_a_run() -> anyhow::Result<()> {
    // Madrid: 2027-03-28 02:00 CET jumps to 03:00 CEST; 2027-10-31 03:00 CEST goes back to
    // 02:00 CET. Both are after this test's real time, as the objects' creation must be.
    let at = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap();
    let h = Harness::start("vb-dst", at(2027, 3, 27, 12, 0)).await?;
    for (name, schedule) in [
        ("half-past-two", "30 2 * * *"),
        ("every-30", "*/30 1-3 * * *"),
    ] {
        let mut body = spec(schedule, ENDPOINT, "backups", "app");
        body["timeZone"] = json!("Europe/Madrid");
        body["startingDeadlineSeconds"] = json!(600);
        body["concurrencyPolicy"] = json!("Allow");
        h.create_backup(name, body).await?;
    }
    // The missed slots since the real creation time are counted, not run.
    h.wait_status("half-past-two", "next slot before spring forward", |b| {
        status_time(b, "nextScheduleTime").is_some()
    })
    .await?;

    // Walk the clock minute by minute through both transitions' hours and collect the runs.
    let walk = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let mut times = Vec::new();
        let mut t = from;
        while t <= to {
            times.push(t);
            t += TimeDelta::minutes(10);
        }
        times
    };
    let spring = walk(at(2027, 3, 27, 23, 0), at(2027, 3, 28, 3, 0));
    for t in spring {
        h.set_clock(t);
        h.wait_status("half-past-two", &format!("reconciled at {t}"), |b| {
            status_time(b, "nextScheduleTime").is_some_and(|next| next > rfc3339(t))
        })
        .await?;
        h.wait_status("every-30", &format!("reconciled at {t}"), |b| {
            status_time(b, "nextScheduleTime").is_some_and(|next| next > rfc3339(t))
        })
        .await?;
    }
    // 02:30 does not exist on the 28th: one run, at the first instant after the gap.
    assert_eq!(
        h.live_run_names("half-past-two").await?,
        vec![format!("half-past-two-{}", minute(at(2027, 3, 28, 1, 0)))]
    );
    // 01:00, 01:30 CET, then 03:00, 03:30 CEST (02:xx does not exist).
    let expected: Vec<String> = [
        at(2027, 3, 28, 0, 0),
        at(2027, 3, 28, 0, 30),
        at(2027, 3, 28, 1, 0),
        at(2027, 3, 28, 1, 30),
    ]
    .into_iter()
    .map(|slot| format!("every-30-{}", minute(slot)))
    .collect();
    let mut runs = h.live_run_names("every-30").await?;
    runs.sort();
    assert_eq!(runs, expected);

    let fall = walk(at(2027, 10, 30, 23, 0), at(2027, 10, 31, 3, 0));
    for t in fall {
        h.set_clock(t);
        for name in ["half-past-two", "every-30"] {
            h.wait_status(name, &format!("reconciled at {t}"), |b| {
                status_time(b, "nextScheduleTime").is_some_and(|next| next > rfc3339(t))
            })
            .await?;
        }
    }
    // 02:30 happens twice on the 31st (CEST, then CET): it runs once.
    let fall_runs: Vec<String> = h
        .live_run_names("half-past-two")
        .await?
        .into_iter()
        .filter(|name| {
            name.as_str() > format!("half-past-two-{}", minute(at(2027, 10, 30, 0, 0))).as_str()
        })
        .collect();
    assert_eq!(
        fall_runs,
        vec![format!("half-past-two-{}", minute(at(2027, 10, 31, 0, 30)))]
    );
    // An interval schedule keeps its real-time interval through the repeated hour (as Vixie
    // cron does): 01:00, 01:30, 02:00, 02:30 CEST, 02:00, 02:30 CET, 03:00, 03:30 CET — every
    // 30 minutes of real time, none twice at one instant, none lost.
    let expected: Vec<String> = [
        (30, 23, 0),
        (30, 23, 30),
        (31, 0, 0),
        (31, 0, 30),
        (31, 1, 0),
        (31, 1, 30),
        (31, 2, 0),
        (31, 2, 30),
    ]
    .into_iter()
    .map(|(d, hh, mm)| format!("every-30-{}", minute(at(2027, 10, d, hh, mm))))
    .collect();
    let mut runs: Vec<String> = h
        .live_run_names("every-30")
        .await?
        .into_iter()
        .filter(|name| {
            name.as_str() > format!("every-30-{}", minute(at(2027, 10, 30, 0, 0))).as_str()
        })
        .collect();
    runs.sort();
    assert_eq!(runs, expected);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_new_runs_and_resuming_runs_the_newest_missed_slot() -> anyhow::Result<()> {
    let slot = hour_after(TimeDelta::zero());
    let h = Harness::start("vb-suspend", slot - TimeDelta::minutes(5)).await?;
    let mut body = spec("0 * * * *", ENDPOINT, "backups", "app");
    body["suspend"] = json!(true);
    h.create_backup("paused", body).await?;
    h.set_clock(slot + TimeDelta::minutes(1));
    let backup = h
        .wait_status("paused", "Scheduled=False Suspended", |b| {
            condition(b, "Scheduled").is_some_and(|c| c.1 == "Suspended")
        })
        .await?;
    assert_eq!(status_time(&backup, "nextScheduleTime"), None);
    h.set_clock(slot + TimeDelta::minutes(2));
    h.wait_status("paused", "still suspended after another reconcile", |b| {
        condition(b, "Scheduled").is_some_and(|c| c.0 == "False")
    })
    .await?;
    assert!(h.runs_of("paused").await?.is_empty());

    h.patch_backup("paused", json!({"spec": {"suspend": false}}))
        .await?;
    let run = format!("paused-{}", minute(slot));
    eventually("the missed slot to run on resume", || async {
        h.runs.get(&run).await.ok()
    })
    .await?;
    h.wait_status("paused", "Scheduled=True", |b| {
        condition(b, "Scheduled").is_some_and(|c| c.0 == "True")
    })
    .await?;
    assert_eq!(h.live_run_names("paused").await?, vec![run]);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_a_slot_while_a_run_is_active_and_says_so() -> anyhow::Result<()> {
    let slot = hour_after(TimeDelta::zero());
    let h = Harness::start("vb-forbid", slot - TimeDelta::minutes(1)).await?;
    h.create_backup("strict", spec("0 * * * *", ENDPOINT, "backups", "app"))
        .await?;
    h.set_clock(slot + TimeDelta::seconds(5));
    let first = format!("strict-{}", minute(slot));
    eventually("the first run", || async { h.runs.get(&first).await.ok() }).await?;
    h.set_run_status(&first, json!({"phase": "Running"}))
        .await?;

    let second = slot + TimeDelta::hours(1);
    h.set_clock(second + TimeDelta::seconds(5));
    let backup = h
        .wait_status("strict", "the skipped slot recorded", |b| {
            status_time(b, "lastScheduleTime") == Some(rfc3339(second))
        })
        .await?;
    assert_eq!(
        backup.status.as_ref().and_then(|s| s.missed_schedules),
        Some(1)
    );
    let scheduled = condition(&backup, "Scheduled").unwrap_or_default();
    assert!(
        scheduled.2.contains("skipped") && scheduled.2.contains(&first),
        "{scheduled:?}"
    );
    let event = h.wait_event("strict", "SlotSkipped").await?;
    assert!(event.contains(&first), "{event}");
    assert_eq!(h.live_run_names("strict").await?, vec![first.clone()]);

    // Once the run finished, the next slot runs (and the missed count restarts).
    h.set_run_status(&first, json!({"phase": "Succeeded"}))
        .await?;
    let third = slot + TimeDelta::hours(2);
    h.set_clock(third + TimeDelta::seconds(5));
    let next = format!("strict-{}", minute(third));
    eventually("the next slot's run", || async {
        h.runs.get(&next).await.ok()
    })
    .await?;
    h.wait_status("strict", "missed count reset", |b| {
        b.status.as_ref().and_then(|s| s.missed_schedules) == Some(0)
    })
    .await?;

    // A reconcile that read the status before the new run's write (a lagging cache) writes the
    // old count back; the next reconcile must see that the newer run restarted it.
    h.backups
        .patch_status(
            "strict",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {
                "lastScheduleTime": rfc3339(second),
                "missedSchedules": 1,
            }})),
        )
        .await?;
    h.poke();
    h.wait_status("strict", "the stale count corrected", |b| {
        let status = b.status.as_ref();
        status.and_then(|s| s.missed_schedules) == Some(0)
            && status_time(b, "lastScheduleTime") == Some(rfc3339(third))
    })
    .await?;
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_deletes_the_active_run_and_allow_runs_beside_it() -> anyhow::Result<()> {
    let slot = hour_after(TimeDelta::zero());
    let h = Harness::start("vb-replace", slot - TimeDelta::minutes(1)).await?;
    for (name, policy) in [("swap", "Replace"), ("both", "Allow")] {
        let mut body = spec("0 * * * *", ENDPOINT, "backups", name);
        body["concurrencyPolicy"] = json!(policy);
        h.create_backup(name, body).await?;
    }
    h.set_clock(slot + TimeDelta::seconds(5));
    for name in ["swap", "both"] {
        let run = format!("{name}-{}", minute(slot));
        eventually("the first run", || async { h.runs.get(&run).await.ok() }).await?;
        h.set_run_status(&run, json!({"phase": "Running"})).await?;
    }
    let second = slot + TimeDelta::hours(1);
    h.set_clock(second + TimeDelta::seconds(5));
    let new = format!("swap-{}", minute(second));
    eventually("Replace: the old run gone, the new one there", || async {
        let names = h.live_run_names("swap").await.ok()?;
        (names == vec![new.clone()]).then_some(())
    })
    .await?;
    h.wait_event("swap", "RunReplaced").await?;
    let both = vec![
        format!("both-{}", minute(slot)),
        format!("both-{}", minute(second)),
    ];
    eventually("Allow: both runs", || async {
        (h.live_run_names("both").await.ok()? == both).then_some(())
    })
    .await?;
    let backup = h
        .wait_status("both", "two active runs", |b| {
            b.status.as_ref().is_some_and(|s| s.active.len() == 2)
        })
        .await?;
    assert_eq!(backup.status.and_then(|s| s.missed_schedules), Some(0));
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_past_the_starting_deadline_is_counted_not_run() -> anyhow::Result<()> {
    let slot = hour_after(TimeDelta::zero());
    let h = Harness::start("vb-deadline", slot - TimeDelta::minutes(1)).await?;
    let mut body = spec("0 * * * *", ENDPOINT, "backups", "app");
    body["startingDeadlineSeconds"] = json!(300);
    h.create_backup("late", body).await?;
    // Six minutes late (the operator was down, say): past the 300 s deadline.
    h.set_clock(slot + TimeDelta::minutes(6));
    let backup = h
        .wait_status("late", "the missed slot recorded", |b| {
            status_time(b, "lastScheduleTime") == Some(rfc3339(slot))
        })
        .await?;
    assert_eq!(
        backup.status.as_ref().and_then(|s| s.missed_schedules),
        Some(1)
    );
    h.wait_event("late", "MissedSchedule").await?;
    assert!(h.runs_of("late").await?.is_empty());
    // Within the deadline (299 s late) the next slot runs.
    let second = slot + TimeDelta::hours(1);
    h.set_clock(second + TimeDelta::seconds(299));
    let run = format!("late-{}", minute(second));
    eventually("the next slot's run", || async {
        h.runs.get(&run).await.ok()
    })
    .await?;
    assert_eq!(h.live_run_names("late").await?, vec![run]);
    h.stop().await
}
