//! Names that become object paths: backup names and store prefixes. Validated strictly, so a
//! hostile name can never escape its folder or collide with another backup.

use crate::error::BackupError;

/// Checks a backup name: 1–200 characters of `A–Z a–z 0–9 . _ -`, not starting with `.` or `-`.
pub fn check_backup_name(name: &str) -> Result<(), BackupError> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(BackupError::Config(format!(
            "invalid backup name {name:?}: use 1–200 characters of A–Z a–z 0–9 . _ - \
             (not starting with . or -)"
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
                "invalid prefix {prefix:?}: each segment is 1–200 characters of A–Z a–z 0–9 . _ -"
            ))
        })?;
    }
    Ok(())
}

/// A default backup name: `<what>-YYYYMMDDTHHMMSSZ`.
pub fn default_backup_name(what: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{what}-{}", at.format("%Y%m%dT%H%M%SZ"))
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
    fn default_names_sort_by_time() {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        assert_eq!(
            default_backup_name("postgres", at),
            "postgres-19700101T000000Z"
        );
    }
}
