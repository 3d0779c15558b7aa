//! The snapshot's identifier and tags: pure functions, so their rules are unit-tested.

use std::collections::BTreeMap;

use crate::error::BackupError;

/// The tag that names the backup a snapshot belongs to. With [`MANAGED_BY_TAG`] it is how
/// retention knows a snapshot is ours: one without both is never deleted.
pub const BACKUP_TAG: &str = "vertice.dev/backup";
/// The tag that says vertice-backup made the snapshot (the value is [`MANAGED_BY`]), the same
/// key the operator puts on its Jobs.
pub const MANAGED_BY_TAG: &str = "app.kubernetes.io/managed-by";
/// [`MANAGED_BY_TAG`]'s value.
pub const MANAGED_BY: &str = "vertice-backup";

/// RDS's limit on a snapshot identifier.
const MAX_ID_LEN: usize = 255;
/// RDS's limits on a tag (keys 128, values 256 characters; at most 50 tags a resource).
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
const MAX_TAGS: usize = 50;

/// `vertice-<backup name>-<suffix>` as an RDS identifier: ASCII letters and digits kept
/// (lowercased), every other run of characters one hyphen, cut to RDS's 255 characters. It
/// starts with a letter and has no double or trailing hyphen, as RDS requires; the random
/// `suffix` keeps two stores' backups of the same name apart.
pub fn snapshot_id(backup_name: &str, suffix: &str) -> String {
    let mut id = String::from("vertice-");
    for character in backup_name.chars() {
        if character.is_ascii_alphanumeric() {
            id.push(character.to_ascii_lowercase());
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    let room = MAX_ID_LEN - suffix.len() - 1;
    id.truncate(room);
    while id.ends_with('-') {
        id.pop();
    }
    format!("{id}-{suffix}")
}

/// The tags a snapshot gets: the user's `tags`, then the run's `labels` (its owner: policy,
/// request), then the owner tags ([`BACKUP_TAG`], [`MANAGED_BY_TAG`]), later ones winning, so
/// no user tag can pass a snapshot off as another backup's.
///
/// Errors: `Config` for a key AWS reserves (`aws:`), an empty key, a key or value past AWS's
/// length limits, or more than 50 tags.
pub fn snapshot_tags(
    tags: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    backup_name: &str,
) -> Result<BTreeMap<String, String>, BackupError> {
    let mut all = BTreeMap::new();
    for (key, value) in tags.iter().chain(labels) {
        all.insert(key.clone(), value.clone());
    }
    all.insert(BACKUP_TAG.to_owned(), backup_name.to_owned());
    all.insert(MANAGED_BY_TAG.to_owned(), MANAGED_BY.to_owned());
    for (key, value) in &all {
        if key.is_empty() || key.to_ascii_lowercase().starts_with("aws:") {
            return Err(BackupError::Config(format!(
                "snapshot tag {key:?}: keys must be non-empty and must not start with `aws:`"
            )));
        }
        if key.chars().count() > MAX_TAG_KEY || value.chars().count() > MAX_TAG_VALUE {
            return Err(BackupError::Config(format!(
                "snapshot tag {key:?}: keys are at most {MAX_TAG_KEY} and values at most \
                 {MAX_TAG_VALUE} characters"
            )));
        }
    }
    if all.len() > MAX_TAGS {
        return Err(BackupError::Config(format!(
            "a snapshot takes at most {MAX_TAGS} tags, {} given (with the owner tags)",
            all.len()
        )));
    }
    Ok(all)
}

/// Whether `tags` say the snapshot is the one vertice-backup made for `backup_name`.
pub fn is_ours(tags: &BTreeMap<String, String>, backup_name: &str) -> bool {
    tags.get(MANAGED_BY_TAG).map(String::as_str) == Some(MANAGED_BY)
        && tags.get(BACKUP_TAG).map(String::as_str) == Some(backup_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_rds_id(id: &str) -> bool {
        id.len() <= 255
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !id.contains("--")
            && !id.ends_with('-')
    }

    #[test]
    fn identifiers_follow_the_rds_rules_for_any_backup_name() {
        let long = "x".repeat(400);
        for name in [
            "postgres-20260101T000000Z-ab12",
            "Nightly_Backup.2026",
            "--weird--",
            "ünïcödé name with spaces",
            "",
            long.as_str(),
            "a-",
        ] {
            let id = snapshot_id(name, "0a1b2c3d");
            assert!(valid_rds_id(&id), "{name:?} → {id:?}");
            assert!(id.ends_with("-0a1b2c3d"), "{id}");
        }
        assert_eq!(
            snapshot_id("Nightly_Backup.2026", "ff"),
            "vertice-nightly-backup-2026-ff"
        );
    }

    #[test]
    fn owner_tags_win_and_reserved_or_oversized_tags_are_refused() {
        let user = BTreeMap::from([
            (BACKUP_TAG.to_owned(), "someone-else".to_owned()),
            ("team".to_owned(), "billing".to_owned()),
        ]);
        let labels =
            BTreeMap::from([("backup.vertice.dev/policy".to_owned(), "nightly".to_owned())]);
        let tags = snapshot_tags(&user, &labels, "b1").unwrap();
        assert_eq!(tags[BACKUP_TAG], "b1");
        assert_eq!(tags[MANAGED_BY_TAG], MANAGED_BY);
        assert_eq!(tags["team"], "billing");
        assert_eq!(tags["backup.vertice.dev/policy"], "nightly");
        assert!(is_ours(&tags, "b1"));
        assert!(!is_ours(&tags, "b2"));
        assert!(!is_ours(
            &BTreeMap::from([(BACKUP_TAG.to_owned(), "b1".to_owned())]),
            "b1"
        ));

        for key in ["aws:created", "AWS:x", "", &"k".repeat(129)] {
            let bad = BTreeMap::from([(key.to_owned(), "v".to_owned())]);
            assert!(
                snapshot_tags(&bad, &BTreeMap::new(), "b").is_err(),
                "{key:?}"
            );
        }
        let long_value = BTreeMap::from([("k".to_owned(), "v".repeat(257))]);
        assert!(snapshot_tags(&long_value, &BTreeMap::new(), "b").is_err());
        let many: BTreeMap<_, _> = (0..49).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(snapshot_tags(&many, &BTreeMap::new(), "b").is_err());
    }
}
