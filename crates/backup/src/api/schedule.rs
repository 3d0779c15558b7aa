//! When a `VerticeBackup` is due: its cron schedule in its time zone, evaluated the way a
//! CronJob is (the most recent missed time runs once; older misses are counted, not replayed;
//! a run later than `startingDeadlineSeconds` is skipped). Pure functions of the times given,
//! so tests pass any "now" — across DST changes included.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("schedule {schedule:?} is not a valid cron expression: {reason}")]
    InvalidCron {
        /// The expression as given.
        schedule: String,
        /// The parser's explanation.
        reason: String,
    },
    /// The time zone is not in the bundled IANA database.
    #[error("time zone {0:?} is not an IANA time zone name")]
    UnknownTimeZone(String),
}

/// Parses a 5-field cron expression or a macro (`@daily`). Seconds are not a field: a
/// 6-field expression is refused rather than silently read with seconds first.
pub fn parse_schedule(schedule: &str) -> Result<Cron, ScheduleError> {
    let invalid = |reason: String| ScheduleError::InvalidCron {
        schedule: schedule.to_owned(),
        reason,
    };
    let trimmed = schedule.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
        return Err(invalid(
            "expected 5 fields: minute hour day-of-month month day-of-week".to_owned(),
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|error| invalid(error.to_string()))
}

/// A schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

/// What is due at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The scheduled time to run now, if any (the most recent one not yet run, within the
    /// starting deadline).
    pub run: Option<DateTime<Utc>>,
    /// Scheduled times since the last run that will not run: older misses, and the newest one
    /// when it is past the starting deadline.
    pub missed: u32,
    /// The next scheduled time after `now`.
    pub next: Option<DateTime<Utc>>,
}

/// Most missed times counted before giving up counting (a schedule every minute that was
/// suspended for a year must not loop half a million times).
const MAX_COUNTED_MISSES: u32 = 1000;

impl Schedule {
    /// A schedule from the spec's `schedule` and `timeZone` (UTC when `None`).
    pub fn new(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let cron = parse_schedule(schedule)?;
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ScheduleError::UnknownTimeZone(name.to_owned()))?,
        };
        Ok(Self { cron, zone })
    }

    /// The first scheduled time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }

    /// The newest scheduled time at or before `now` (what a skipped or missed slot records as
    /// acted on).
    pub fn latest_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&self.zone), true)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }

    /// What is due at `now`, given the last scheduled time that ran (or, for a new schedule,
    /// its creation time) and the optional starting deadline in seconds.
    pub fn due(
        &self,
        last_scheduled: DateTime<Utc>,
        now: DateTime<Utc>,
        starting_deadline_seconds: Option<i64>,
    ) -> Due {
        let latest = self
            .cron
            .find_previous_occurrence(&now.with_timezone(&self.zone), true)
            .ok()
            .map(|time| time.with_timezone(&Utc))
            .filter(|time| *time > last_scheduled);
        let next = self.next_after(now);
        let Some(latest) = latest else {
            return Due {
                run: None,
                missed: 0,
                next,
            };
        };
        // Scheduled times between the last run and `latest`, `latest` included.
        let mut count: u32 = 1;
        let mut cursor = last_scheduled;
        while let Some(time) = self.next_after(cursor) {
            if time >= latest || count >= MAX_COUNTED_MISSES {
                break;
            }
            count += 1;
            cursor = time;
        }
        let too_late = starting_deadline_seconds
            .is_some_and(|deadline| (now - latest).num_seconds() > deadline);
        if too_late {
            Due {
                run: None,
                missed: count,
                next,
            }
        } else {
            Due {
                run: Some(latest),
                missed: count - 1,
                next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn six_fields_and_garbage_are_refused() {
        assert!(parse_schedule("0 0 3 * * *").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
        assert!(parse_schedule("").is_err());
        assert!(Schedule::new("@daily", Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn daily_in_a_time_zone() {
        let schedule =
            Schedule::new("0 3 * * *", Some("Europe/Madrid")).unwrap_or_else(|e| panic!("{e}"));
        // 03:00 in Madrid in winter is 02:00 UTC.
        assert_eq!(
            schedule.next_after(utc(2026, 1, 10, 12, 0)),
            Some(utc(2026, 1, 11, 2, 0))
        );
    }

    #[test]
    fn spring_forward_runs_once_after_the_gap() {
        // Madrid skips 02:00–03:00 on 2026-03-29; a 02:30 job runs at the first real instant
        // after the gap (03:00 CEST = 01:00 UTC), once.
        let schedule =
            Schedule::new("30 2 * * *", Some("Europe/Madrid")).unwrap_or_else(|e| panic!("{e}"));
        let first = schedule.next_after(utc(2026, 3, 28, 12, 0));
        assert_eq!(first, Some(utc(2026, 3, 29, 1, 0)));
        let second = first.and_then(|t| schedule.next_after(t));
        assert_eq!(second, Some(utc(2026, 3, 30, 0, 30)));
    }

    #[test]
    fn fall_back_runs_once_in_the_repeated_hour() {
        // Madrid repeats 02:00–03:00 on 2026-10-25; a 02:30 job runs once, not twice.
        let schedule =
            Schedule::new("30 2 * * *", Some("Europe/Madrid")).unwrap_or_else(|e| panic!("{e}"));
        let start = utc(2026, 10, 24, 12, 0);
        let first = schedule.next_after(start).unwrap_or_default();
        let second = schedule.next_after(first).unwrap_or_default();
        assert_eq!(first.date_naive(), utc(2026, 10, 25, 0, 0).date_naive());
        assert_eq!(second.date_naive(), utc(2026, 10, 26, 0, 0).date_naive());
    }

    #[test]
    fn due_runs_the_latest_miss_once_and_counts_the_rest() {
        let schedule = Schedule::new("0 * * * *", None).unwrap_or_else(|e| panic!("{e}"));
        let due = schedule.due(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 3, 30), None);
        assert_eq!(due.run, Some(utc(2026, 1, 1, 3, 0)));
        assert_eq!(due.missed, 2);
        assert_eq!(due.next, Some(utc(2026, 1, 1, 4, 0)));
    }

    #[test]
    fn due_skips_past_the_starting_deadline() {
        let schedule = Schedule::new("0 * * * *", None).unwrap_or_else(|e| panic!("{e}"));
        let due = schedule.due(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 1, 10), Some(300));
        assert_eq!(due.run, None);
        assert_eq!(due.missed, 1);
        let due = schedule.due(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 1, 4), Some(300));
        assert_eq!(due.run, Some(utc(2026, 1, 1, 1, 0)));
    }

    #[test]
    fn nothing_due_before_the_first_time() {
        let schedule = Schedule::new("@daily", None).unwrap_or_else(|e| panic!("{e}"));
        let due = schedule.due(utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 12, 0), None);
        assert_eq!(due.run, None);
        assert_eq!(due.missed, 0);
        assert_eq!(due.next, Some(utc(2026, 1, 2, 0, 0)));
    }

    #[test]
    fn due_across_dst_changes_never_doubles_nor_loses_a_slot() {
        let schedule =
            Schedule::new("30 2 * * *", Some("Europe/Madrid")).unwrap_or_else(|e| panic!("{e}"));
        // Fall back, 2026-10-25: 02:30 CEST (00:30 UTC) ran; 02:30 CET (01:30 UTC) must not.
        let ran = utc(2026, 10, 25, 0, 30);
        for minutes in [0, 59, 60, 61, 90, 600] {
            let now = ran + chrono::TimeDelta::minutes(minutes);
            assert_eq!(schedule.due(ran, now, None).run, None, "{now}");
        }
        assert_eq!(
            schedule.due(ran, utc(2026, 10, 26, 1, 31), None).run,
            Some(utc(2026, 10, 26, 1, 30))
        );
        // Spring forward, 2026-03-29: 02:30 does not exist; the run is at 03:00 CEST (01:00
        // UTC), once.
        let ran = utc(2026, 3, 28, 1, 30);
        assert_eq!(schedule.due(ran, utc(2026, 3, 29, 0, 59), None).run, None);
        let slot = utc(2026, 3, 29, 1, 0);
        assert_eq!(
            schedule.due(ran, utc(2026, 3, 29, 1, 1), None).run,
            Some(slot)
        );
        assert_eq!(schedule.due(slot, utc(2026, 3, 29, 23, 0), None).run, None);
        assert_eq!(
            schedule.due(slot, utc(2026, 3, 30, 0, 31), None).run,
            Some(utc(2026, 3, 30, 0, 30))
        );
    }

    #[test]
    fn a_year_of_misses_is_bounded() {
        let schedule = Schedule::new("* * * * *", None).unwrap_or_else(|e| panic!("{e}"));
        let due = schedule.due(utc(2025, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0), None);
        assert!(due.run.is_some());
        assert_eq!(due.run, Some(utc(2026, 1, 1, 0, 0)));
        assert_eq!(due.missed, MAX_COUNTED_MISSES - 1);
    }
}
