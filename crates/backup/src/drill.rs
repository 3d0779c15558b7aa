//! `drill`: proves a backup restores. Restores it (checking everything on the way) into a scratch target (a new
//! database with a generated name, or a temporary Redis data directory), compares the row/key
//! counts with those the manifest recorded at dump time, reports the restore duration, and
//! removes the scratch target. The copy must act on nothing but itself: it is restored with
//! its events disabled (drills never run events), and its "isolated" check fails when it holds
//! anything that reaches outside it (see [`crate::isolation`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::BackupError;
use crate::format::to_hex;
use crate::isolation::IsolationReport;
use crate::manifest::Manifest;
use crate::pipeline::encrypt::random_bytes;
use crate::progress::Progress;
use crate::restore::{RestoreReport, restore_backup};
use crate::source::{DatabaseSource, ObjectCounts, RedisKeyCounts, RestoreTarget, TableRows};
use crate::verify::OpenedBackup;
use tokio_util::sync::CancellationToken;

/// What a drill found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    /// The restore.
    pub restore: RestoreReport,
    /// Where it was restored (the scratch database or directory; removed afterwards).
    pub scratch_target: String,
    /// Counts the manifest recorded at dump time.
    pub expected: Option<ObjectCounts>,
    /// Counts in the restored scratch target.
    pub restored: ObjectCounts,
    /// Differences, one line per table (empty when the counts match).
    pub differences: Vec<String>,
    /// What the copy holds that reaches outside it, and its events/subscriptions.
    pub isolation: IsolationReport,
    /// Whether the copy is isolated: nothing in it reaches outside it or runs on its own.
    pub isolated: bool,
}

impl DrillReport {
    /// Whether the drill passed: the counts match and the copy is isolated.
    pub fn passed(&self) -> bool {
        self.differences.is_empty() && self.isolated
    }
}

/// A drill's scratch target on the server (a new database, or a temporary data directory),
/// and what removes it; built by the engine ([`crate::source::DatabaseEngine::scratch_target`]).
pub struct Scratch {
    target: RestoreTarget,
    /// The directory a target on disk lives in, removed with it.
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// A fresh scratch target on `source` for `manifest`'s backup, with its database-level
    /// properties. Errors: `Config` when the engine cannot drill such a backup on one server.
    pub fn new(source: &DatabaseSource, manifest: &Manifest) -> Result<Self, BackupError> {
        let suffix = to_hex(&random_bytes::<6>()?);
        let (target, dir) = source.as_engine().scratch_target(manifest, &suffix)?;
        Ok(Scratch { target, dir })
    }

    /// The restore target.
    pub fn target(&self) -> &RestoreTarget {
        &self.target
    }

    /// A name for reports: the scratch database or directory.
    pub fn describe(&self) -> String {
        self.target.location()
    }

    /// Removes the scratch target.
    pub async fn remove(self, source: &DatabaseSource) -> Result<(), BackupError> {
        source.as_engine().remove_scratch(&self.target).await?;
        if let Some(dir) = self.dir {
            dir.close()?;
        }
        Ok(())
    }
}

/// The Redis `databases` setting a manifest recorded for its source, if any.
pub fn redis_databases(manifest: &Manifest) -> Option<u32> {
    manifest
        .source
        .as_ref()?
        .settings
        .get("databases")?
        .parse()
        .ok()
}

/// Differences between dump-time and restored counts, one line each; tables are named
/// `"schema"."table"` with each part quoted, so a dot inside a name cannot hide a table.
///
/// Older manifests key tables by the joined string `schema.table` ([`ObjectCounts::Tables`]).
/// They are compared by joining the restored names the same way; a joined key that more than
/// one restored table produces (`a."b.c"` and `"a.b".c` both give `a.b.c`) cannot be told
/// apart — that old manifest recorded only one count for them — so it is left out of the
/// comparison and logged, rather than reported as a difference the backup does not have.
///
/// Redis keys: the restored snapshot is counted as loaded by a replica, so keys whose expiry
/// passed after the dump are still counted (see `source::redis::count_keys_in_data_dir`).
/// What may legitimately differ is only what changed between the count and the snapshot an
/// instant later: keys with an expiry may have expired and been removed in it. So keys
/// without an expiry must match exactly, and keys with one may be fewer, never more.
pub fn compare_counts(expected: &ObjectCounts, restored: &ObjectCounts) -> Vec<String> {
    match (expected, restored) {
        (ObjectCounts::RedisKeys(expected), ObjectCounts::RedisKeys(restored)) => {
            let mut differences = Vec::new();
            let persistent = |counts: &RedisKeyCounts| counts.keys.saturating_sub(counts.expiring);
            if persistent(expected) != persistent(restored) {
                differences.push(format!(
                    "keys without an expiry: {} at dump time, {} restored",
                    persistent(expected),
                    persistent(restored)
                ));
            }
            if restored.expiring > expected.expiring {
                differences.push(format!(
                    "keys with an expiry: {} at dump time, {} restored",
                    expected.expiring, restored.expiring
                ));
            }
            differences
        }
        (ObjectCounts::Keys(expected), ObjectCounts::RedisKeys(restored)) => compare_counts(
            &ObjectCounts::Keys(*expected),
            &ObjectCounts::Keys(restored.keys),
        ),
        (ObjectCounts::Keys(expected), ObjectCounts::Keys(restored)) => {
            if expected == restored {
                Vec::new()
            } else {
                vec![format!(
                    "keys: {expected} at dump time, {restored} restored"
                )]
            }
        }
        (ObjectCounts::Rows(expected), ObjectCounts::Rows(restored)) => {
            let flat = |rows: &TableRows| -> BTreeMap<String, u64> {
                rows.iter()
                    .flat_map(|(schema, tables)| {
                        tables
                            .iter()
                            .map(move |(table, n)| (quoted_table(schema, table), *n))
                    })
                    .collect()
            };
            differences(&flat(expected), &flat(restored))
        }
        (
            ObjectCounts::Tables(_) | ObjectCounts::Rows(_),
            ObjectCounts::Tables(_) | ObjectCounts::Rows(_),
        ) => {
            let (expected, expected_ambiguous) = joined_keys(expected);
            let (restored, restored_ambiguous) = joined_keys(restored);
            let ambiguous: BTreeSet<&String> = expected_ambiguous
                .iter()
                .chain(&restored_ambiguous)
                .collect();
            for key in &ambiguous {
                tracing::warn!(
                    table = %key,
                    "the dump-time count names several tables (an older manifest joined schema \
                     and table with a dot); not compared"
                );
            }
            let keep = |map: BTreeMap<String, u64>| -> BTreeMap<String, u64> {
                map.into_iter()
                    .filter(|(key, _)| !ambiguous.contains(key))
                    .collect()
            };
            differences(&keep(expected.clone()), &keep(restored.clone()))
        }
        _ => vec!["dump-time and restored counts are of different kinds".into()],
    }
}

/// `"schema"."table"`, each part in double quotes with inner quotes doubled.
pub fn quoted_table(schema: &str, table: &str) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    format!("{}.{}", quote(schema), quote(table))
}

/// Counts keyed the old way (`schema.table` joined with a dot), and the keys that more than one
/// table produces.
fn joined_keys(counts: &ObjectCounts) -> (BTreeMap<String, u64>, BTreeSet<String>) {
    match counts {
        ObjectCounts::Tables(tables) => (tables.clone(), BTreeSet::new()),
        ObjectCounts::Rows(rows) => {
            let mut joined = BTreeMap::new();
            let mut ambiguous = BTreeSet::new();
            for (schema, tables) in rows {
                for (table, n) in tables {
                    let key = format!("{schema}.{table}");
                    if joined.insert(key.clone(), *n).is_some() {
                        ambiguous.insert(key);
                    }
                }
            }
            (joined, ambiguous)
        }
        ObjectCounts::Keys(_) | ObjectCounts::RedisKeys(_) => (BTreeMap::new(), BTreeSet::new()),
    }
}

/// One line per table whose count differs, is missing, or is new.
fn differences(expected: &BTreeMap<String, u64>, restored: &BTreeMap<String, u64>) -> Vec<String> {
    let mut differences = Vec::new();
    for (table, rows) in expected {
        match restored.get(table) {
            Some(found) if found == rows => {}
            Some(found) => {
                differences.push(format!(
                    "{table}: {rows} rows at dump time, {found} restored"
                ));
            }
            None => differences.push(format!("{table}: missing after restore")),
        }
    }
    for table in restored
        .keys()
        .filter(|table| !expected.contains_key(*table))
    {
        differences.push(format!("{table}: not in the dump-time counts"));
    }
    differences
}

/// Restores a backup into a scratch target on `server` (one pass: the scratch target is
/// itself staged, so every check runs while it streams in) and compares counts.
pub async fn run_drill<B: AsRef<OpenedBackup>>(
    backup: &B,
    server: &DatabaseSource,
    progress: &Progress,
) -> Result<DrillReport, BackupError> {
    run_drill_until(backup.as_ref(), server, progress, &CancellationToken::new()).await
}

/// [`run_drill`] that stops (`BackupError::Cancelled`, scratch target removed) when `cancel`
/// fires.
pub async fn run_drill_until(
    backup: &OpenedBackup,
    server: &DatabaseSource,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<DrillReport, BackupError> {
    let databases = backup.manifest().databases.clone();
    let scratch = Scratch::new(server, backup.manifest())?;
    let target = scratch.target().clone();
    let scratch_target = scratch.describe();
    let outcome = async {
        let stream = server.restore(&target).await?;
        // The restore handles a cancel itself: it must finish removing its staging target.
        let restore = restore_backup(backup, stream, progress, cancel).await?;
        // A cancel while counting or inspecting stops the scratch server (killed on drop).
        let checked = async {
            let restored = server.count_restored(&target, &databases).await?;
            let isolation = server.isolation_report(&target, &databases).await?;
            Ok::<_, BackupError>((restored, isolation))
        };
        let (restored, isolation) = tokio::select! {
            checked = checked => checked?,
            () = cancel.cancelled() => return Err(BackupError::Cancelled),
        };
        Ok::<_, BackupError>((restore, restored, isolation))
    }
    .await;
    let removed = scratch.remove(server).await;
    let (restore, restored, isolation) = outcome?;
    if let Err(error) = removed {
        tracing::warn!(%error, target = %scratch_target, "could not remove the drill's scratch target");
    }
    let expected = backup.manifest().counts.clone();
    let differences = match &expected {
        Some(expected) => compare_counts(expected, &restored),
        None => Vec::new(),
    };
    Ok(DrillReport {
        restore,
        scratch_target,
        expected,
        restored,
        differences,
        isolated: isolation.isolated(),
        isolation,
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    fn rows(entries: &[(&str, &str, u64)]) -> ObjectCounts {
        let mut rows = TableRows::new();
        for (schema, table, n) in entries {
            rows.entry(schema.to_string())
                .or_default()
                .insert(table.to_string(), *n);
        }
        ObjectCounts::Rows(rows)
    }

    #[test]
    fn counts_comparison_names_each_difference() {
        let expected = rows(&[("public", "a", 3), ("public", "b", 5)]);
        assert!(compare_counts(&expected, &expected).is_empty());
        let restored = rows(&[("public", "a", 2), ("public", "c", 1)]);
        let differences = compare_counts(&expected, &restored);
        assert_eq!(
            differences,
            [
                "\"public\".\"a\": 3 rows at dump time, 2 restored",
                "\"public\".\"b\": missing after restore",
                "\"public\".\"c\": not in the dump-time counts",
            ]
        );
        assert!(compare_counts(&ObjectCounts::Keys(3), &ObjectCounts::Keys(3)).is_empty());
        assert_eq!(
            compare_counts(&ObjectCounts::Keys(3), &ObjectCounts::Keys(4)).len(),
            1
        );
        assert_eq!(compare_counts(&ObjectCounts::Keys(3), &restored).len(), 1);
    }

    #[test]
    fn dotted_names_are_distinct_tables() {
        // a."b.c" holds 5 rows, "a.b".c none; a schema "a.b" with table "c" and a schema "a"
        // with table "b.c" must never share a count.
        let expected = rows(&[("a", "b.c", 5), ("a.b", "c", 0)]);
        assert!(compare_counts(&expected, &expected).is_empty());
        let lost = rows(&[("a", "b.c", 0), ("a.b", "c", 0)]);
        assert_eq!(
            compare_counts(&expected, &lost),
            ["\"a\".\"b.c\": 5 rows at dump time, 0 restored"]
        );
        let swapped = rows(&[("a", "b.c", 0), ("a.b", "c", 5)]);
        assert_eq!(compare_counts(&expected, &swapped).len(), 2);
        for (schema, table) in [("x\"y", "t"), ("s", "t\"."), ("ü.ß", "表.1"), ("", ".")] {
            let one = rows(&[(schema, table, 1)]);
            let other = rows(&[(schema, table, 2)]);
            assert_eq!(
                compare_counts(&one, &other).len(),
                1,
                "{schema:?} {table:?}"
            );
        }
        assert_ne!(quoted_table("a", "b.c"), quoted_table("a.b", "c"));
        assert_ne!(quoted_table("a\".\"b", "c"), quoted_table("a", "b\".\"c"));
    }

    #[test]
    fn older_manifests_with_joined_keys_still_compare() {
        let legacy = ObjectCounts::Tables(BTreeMap::from([
            ("public.items".to_string(), 10),
            ("a.b.c".to_string(), 0),
        ]));
        // The same database today: a."b.c" and "a.b".c both join to a.b.c, so that key is not
        // compared; public.items still is.
        let today = rows(&[("public", "items", 10), ("a", "b.c", 5), ("a.b", "c", 0)]);
        assert!(compare_counts(&legacy, &today).is_empty());
        let fewer = rows(&[("public", "items", 9), ("a", "b.c", 5), ("a.b", "c", 0)]);
        assert_eq!(
            compare_counts(&legacy, &fewer),
            ["public.items: 10 rows at dump time, 9 restored"]
        );
        // Without a collision a dotted joined key is compared like any other.
        let single = rows(&[("public", "items", 10), ("a", "b.c", 0)]);
        assert!(compare_counts(&legacy, &single).is_empty());
        let single_changed = rows(&[("public", "items", 10), ("a", "b.c", 4)]);
        assert_eq!(compare_counts(&legacy, &single_changed).len(), 1);
        // And the old JSON still parses into the old form.
        let parsed: ObjectCounts =
            serde_json::from_str(r#"{"tables": {"public.items": 10, "a.b.c": 0}}"#).unwrap();
        assert_eq!(parsed, legacy);
    }
}
