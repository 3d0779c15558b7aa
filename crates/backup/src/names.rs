//! Names that become object paths: backup names and store prefixes. Validated strictly, so a
//! hostile name can never escape its folder or collide with another backup.

use crate::error::BackupError;
use crate::format::{is_own_object_name, to_hex};

/// The rule for backup names and prefix segments, as the messages, `--help` and the README
/// state it.
pub const NAME_RULE: &str = "1–200 characters of A–Z a–z 0–9 . _ - (not starting with . or -, \
     and not a name a backup's own objects have: manifest.json, reservation.json, \
     verification.json, data-NNNNNN.vbk)";

/// Checks a backup name: 1–200 characters of `A–Z a–z 0–9 . _ -`, not starting with `.` or `-`,
/// and not one of the names of a backup's own objects (which would make a folder and an object
/// of one name). The same rule holds for each segment of a prefix.
pub fn check_backup_name(name: &str) -> Result<(), BackupError> {
    let valid = !name.is_empty()
        && !is_own_object_name(name)
        && name.len() <= 200
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(BackupError::Config(format!(
            "invalid backup name {name:?}: use {NAME_RULE}"
        )))
    }
}

/// Checks a store prefix: `/`-separated segments that are each valid backup names.
pub fn check_prefix(prefix: &str) -> Result<(), BackupError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(());
    }
    for segment in trimmed.split('/') {
        check_backup_name(segment).map_err(|_| {
            BackupError::Config(format!(
                "invalid prefix {prefix:?}: segments are separated by /, each is {NAME_RULE}"
            ))
        })?;
    }
    Ok(())
}

/// A default backup name: `<what>-YYYYMMDDTHHMMSS.mmmZ-<6 hex digits of nonce>`. Names of one
/// `what` sort by their UTC time to the millisecond; the nonce keeps two runs started in the
/// same millisecond apart (and if two names ever met, the name reservation would still let
/// only one run have it).
pub fn default_backup_name(
    what: &str,
    at: chrono::DateTime<chrono::Utc>,
    nonce: [u8; 3],
) -> String {
    format!(
        "{what}-{}-{}",
        at.format("%Y%m%dT%H%M%S%.3fZ"),
        to_hex(&nonce)
    )
}

/// A fresh default name for `what`, at the current time with a random nonce.
pub fn new_default_backup_name(what: &str) -> Result<String, BackupError> {
    Ok(default_backup_name(
        what,
        chrono::Utc::now(),
        crate::pipeline::encrypt::random_bytes()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "-rf",
            ".hidden",
            "a b",
            "a\0b",
            "naïve",
            "a;rm -rf /",
            "$(id)",
            "%2e%2e",
            &"x".repeat(201),
            "manifest.json",
            "reservation.json",
            "verification.json",
            "data-000000.vbk",
        ] {
            assert!(check_backup_name(name).is_err(), "{name:?} was accepted");
        }
        for name in ["nightly-20260101T000000Z", "db.prod_1", "A"] {
            assert!(check_backup_name(name).is_ok(), "{name:?} was refused");
        }
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("/team/prod/").is_ok());
        assert!(check_prefix("team/../x").is_err());
        assert!(check_prefix("team//x").is_err());
    }

    #[test]
    fn default_names_sort_by_time_and_differ_within_a_second() {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let name = default_backup_name("postgres", at, [0xab, 0x01, 0xff]);
        assert_eq!(name, "postgres-19700101T000000.000Z-ab01ff");
        assert!(check_backup_name(&name).is_ok());
        let later = default_backup_name("postgres", at + chrono::Duration::milliseconds(1), [0; 3]);
        let much_later =
            default_backup_name("postgres", at + chrono::Duration::seconds(10), [0; 3]);
        assert!(
            name < later && later < much_later,
            "{name} {later} {much_later}"
        );
        let names: std::collections::BTreeSet<_> = (0..200)
            .map(|_| new_default_backup_name("postgres").unwrap())
            .collect();
        assert_eq!(names.len(), 200, "default names collided");
        assert!(names.iter().all(|name| check_backup_name(name).is_ok()));
    }
}
