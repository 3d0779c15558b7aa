//! Admission rules that a plain OpenAPI schema cannot state: the cron grammar, IANA time zone
//! names and Go-style durations, each as a CEL rule with a message a user can act on. The
//! apiserver evaluates them, so a bad value is refused by `kubectl apply`, before any
//! controller sees it (Kubernetes "Validation rules" for CRDs, `x-kubernetes-validations`).

use schemars::{Schema, SchemaGenerator, json_schema};

/// Longest schedule accepted. Bounding it keeps the CEL cost estimate of the regex small.
pub const MAX_SCHEDULE_LENGTH: u64 = 128;

/// The macros a schedule may use instead of five fields (the set CronJob accepts).
pub const SCHEDULE_MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// One cron field: a comma list of `*`, a value or a range, each with an optional `/step`
/// (step ≥ 1). `value` is the regex of one value of that field.
fn cron_field(value: &str) -> String {
    let item = format!("([*]|({value})(-({value}))?)(/0*[1-9][0-9]*)?");
    format!("{item}(,{item})*")
}

/// The regex of a 5-field cron expression (minute hour day-of-month month day-of-week) or a
/// macro, in RE2 syntax without backslashes or tabs so it embeds in a CEL string literal as
/// is (fields are separated by spaces). Names of months
/// and weekdays are accepted in any case, as CronJob does.
pub fn cron_regex() -> String {
    let minute = cron_field("[0-5]?[0-9]");
    let hour = cron_field("[01]?[0-9]|2[0-3]");
    let day_of_month = cron_field("0?[1-9]|[12][0-9]|3[01]");
    let month = cron_field("0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)");
    let day_of_week = cron_field("[0-7]|(?i:sun|mon|tue|wed|thu|fri|sat)");
    let macros = SCHEDULE_MACROS
        .iter()
        .map(|m| m.trim_start_matches('@'))
        .collect::<Vec<_>>()
        .join("|");
    let gap = " +";
    format!(
        "^ *(@({macros})|{minute}{gap}{hour}{gap}{day_of_month}{gap}{month}{gap}{day_of_week}) *$"
    )
}

/// Schema of a `schedule` field: a string with the cron rule.
pub fn schedule_schema(_: &mut SchemaGenerator) -> Schema {
    let rule = format!("self.matches('{}')", cron_regex());
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_SCHEDULE_LENGTH,
        "x-kubernetes-validations": [{
            "rule": rule,
            "message": "must be a 5-field cron expression (minute hour day-of-month month \
                        day-of-week, e.g. \"0 3 * * *\") or one of @yearly, @annually, \
                        @monthly, @weekly, @daily, @midnight, @hourly; seconds are not a field"
        }]
    })
}

/// Every IANA time zone name the operator's bundled tz database knows.
pub fn time_zone_names() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

/// Schema of a `timeZone` field: one of the bundled IANA names. The list is in a CEL rule
/// rather than an `enum` so `kubectl explain` stays readable.
pub fn time_zone_schema(_: &mut SchemaGenerator) -> Schema {
    let names = time_zone_names()
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(",");
    json_schema!({
        "type": "string",
        "maxLength": 64,
        "x-kubernetes-validations": [{
            "rule": format!("self in [{names}]"),
            "message": "must be an IANA time zone name such as \"Europe/Madrid\" or \"UTC\""
        }]
    })
}

/// The Go-style duration grammar accepted for durations (`720h`, `90m`, `1h30m`, `45s`): whole
/// hours, minutes and seconds, in that order, at least one, no fractions and no days (the
/// same units `metav1.Duration` prints).
pub const DURATION_PATTERN: &str = "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// Schema of a duration field.
pub fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 32,
        "x-kubernetes-validations": [{
            "rule": format!("self != '' && self.matches('{DURATION_PATTERN}') && duration(self) > duration('0s')"),
            "message": "must be a positive duration in hours, minutes and seconds, e.g. \"720h\", \"90m\" or \"1h30m\""
        }]
    })
}

/// Parses a duration of [`DURATION_PATTERN`] into seconds; `None` when it does not match.
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_rank = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        let (rank, unit) = match rest.as_bytes().get(digits) {
            Some(b'h') => (1, 3600),
            Some(b'm') => (2, 60),
            Some(b's') => (3, 1),
            _ => return None,
        };
        if rank <= last_rank {
            return None;
        }
        last_rank = rank;
        total = total.checked_add(value.checked_mul(unit)?)?;
        rest = &rest[digits + 1..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(schedule: &str) -> bool {
        // The CEL `matches` is RE2; the regex crate implements the same syntax subset used here.
        regex_lite_is_match(&cron_regex(), schedule)
    }

    fn regex_lite_is_match(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern)
            .map(|re| re.is_match(text))
            .unwrap_or(false)
    }

    #[test]
    fn accepted_schedules_also_parse_with_the_scheduler() {
        for schedule in [
            "0 3 * * *",
            "*/5 * * * *",
            "0 0 1 JAN *",
            "30 2 * * mon-fri",
            "0 0,12 1-15/2 * 0",
            "15 14 1 * 7",
            "@daily",
            "@hourly",
            " 0 3 * * * ",
        ] {
            assert!(matches(schedule), "{schedule} should match");
            assert!(
                crate::api::schedule::parse_schedule(schedule).is_ok(),
                "{schedule} should parse"
            );
        }
    }

    #[test]
    fn refused_schedules() {
        for schedule in [
            "",
            "* * * *",
            "0 0 3 * * *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 32 * *",
            "0 0 0 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "*/0 * * * *",
            "@every 5m",
            "@reboot",
            "0 3 * * * ; rm",
            "a b c d e",
        ] {
            assert!(!matches(schedule), "{schedule:?} should not match");
        }
    }

    #[test]
    fn time_zones_include_the_usual_ones() {
        let names = time_zone_names();
        for zone in ["UTC", "Europe/Madrid", "America/New_York", "Asia/Kolkata"] {
            assert!(names.contains(&zone), "{zone}");
        }
        assert!(!names.contains(&"Mars/Olympus_Mons"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("720h"), Some(720 * 3600));
        assert_eq!(parse_duration_seconds("1h30m"), Some(5400));
        assert_eq!(parse_duration_seconds("45s"), Some(45));
        for bad in ["", "30d", "1.5h", "30m1h", "h", "-1h", "1h1h"] {
            assert_eq!(parse_duration_seconds(bad), None, "{bad}");
            let matched = regex_lite_is_match(DURATION_PATTERN, bad) && !bad.is_empty();
            // Every string the schema lets through must parse here, and vice versa.
            assert_eq!(matched, parse_duration_seconds(bad).is_some(), "{bad}");
        }
    }
}
