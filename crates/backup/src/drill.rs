//! `drill`: proves a backup restores. Verifies it, restores it into a scratch target (a new
//! database with a generated name, or a temporary Redis data directory), compares the row/key
//! counts with those the manifest recorded at dump time, reports the restore duration, and
//! removes the scratch target.

use serde::Serialize;

use crate::error::BackupError;
use crate::format::to_hex;
use crate::pipeline::encrypt::random_bytes;
use crate::progress::Progress;
use crate::restore::{RestoreReport, VerifiedBackup};
use crate::source::identifier::generated_name;
use crate::source::mariadb::MariadbRestoreOptions;
use crate::source::postgres::PostgresRestoreOptions;
use crate::source::redis::RedisRestoreOptions;
use crate::source::{DatabaseProperties, DatabaseSource, Engine, ObjectCounts, RestoreTarget};

/// A scratch database name, `vertice_drill_<hex>`, within `engine`'s name limit.
fn scratch_name(engine: Engine, suffix: &str) -> String {
    generated_name(engine, "vertice_drill", &format!("_{suffix}"))
}

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
    /// Differences, one line per table (empty when the drill passed).
    pub differences: Vec<String>,
}

/// A scratch target for `source`'s engine, and what removes it.
pub enum Scratch {
    /// A new PostgreSQL database.
    Postgres(String),
    /// A new MariaDB database.
    Mariadb(String),
    /// A temporary directory for a Redis RDB, loaded by the `redis-server` of the source's
    /// `binDir` (PATH when unset).
    Redis {
        /// The scratch data directory.
        dir: tempfile::TempDir,
        /// Where the source's Redis tools are.
        bin_dir: Option<std::path::PathBuf>,
    },
}

impl Scratch {
    /// A fresh scratch target for `source` and a backup that holds `databases`.
    pub fn new(source: &DatabaseSource, databases: &[String]) -> Result<Self, BackupError> {
        let suffix = to_hex(&random_bytes::<6>()?);
        Ok(match source {
            DatabaseSource::Postgres(_) => {
                Scratch::Postgres(scratch_name(Engine::Postgres, &suffix))
            }
            DatabaseSource::Mariadb(_) => {
                if databases.len() > 1 {
                    return Err(BackupError::Config(
                        "a drill of a MariaDB backup of several databases needs a scratch server: \
                         restore it there with `restore` and compare with `verify`"
                            .into(),
                    ));
                }
                Scratch::Mariadb(scratch_name(Engine::Mariadb, &suffix))
            }
            DatabaseSource::Redis(server) => Scratch::Redis {
                dir: tempfile::Builder::new()
                    .prefix("vertice-drill-")
                    .tempdir()
                    .map_err(BackupError::Io)?,
                bin_dir: server.config().bin_dir.clone(),
            },
        })
    }

    /// The restore target, with the backup's database-level `properties` (the scratch copy
    /// must hold the data as dumped: a SQL_ASCII or LATIN1 dump in a UTF8 database is not).
    pub fn target(
        &self,
        databases: &[String],
        properties: Option<&DatabaseProperties>,
    ) -> RestoreTarget {
        match self {
            Scratch::Postgres(database) => RestoreTarget::Postgres(PostgresRestoreOptions {
                database: database.clone(),
                overwrite: false,
                no_owner: true,
                no_privileges: true,
                properties: properties.and_then(DatabaseProperties::postgres).cloned(),
            }),
            Scratch::Mariadb(database) => RestoreTarget::Mariadb(MariadbRestoreOptions {
                database: Some(database.clone()),
                dumped_databases: databases.to_vec(),
                overwrite: false,
                properties: properties.and_then(DatabaseProperties::mariadb).cloned(),
            }),
            Scratch::Redis { dir, bin_dir } => RestoreTarget::Redis(RedisRestoreOptions {
                data_dir: dir.path().to_path_buf(),
                dbfilename: "dump.rdb".into(),
                overwrite: false,
                bin_dir: bin_dir.clone(),
            }),
        }
    }

    /// A name for reports.
    pub fn describe(&self) -> String {
        match self {
            Scratch::Postgres(database) | Scratch::Mariadb(database) => database.clone(),
            Scratch::Redis { dir, .. } => dir.path().display().to_string(),
        }
    }

    /// Removes the scratch target.
    pub async fn remove(self, source: &DatabaseSource) -> Result<(), BackupError> {
        match (self, source) {
            (Scratch::Postgres(database), DatabaseSource::Postgres(server)) => {
                server.drop_database(&database).await?;
            }
            (Scratch::Mariadb(database), DatabaseSource::Mariadb(server)) => {
                server.drop_database(&database).await?;
            }
            (Scratch::Redis { dir, .. }, _) => dir.close()?,
            _ => {}
        }
        Ok(())
    }
}

/// Differences between dump-time and restored counts, one line each.
pub fn compare_counts(expected: &ObjectCounts, restored: &ObjectCounts) -> Vec<String> {
    match (expected, restored) {
        (ObjectCounts::Keys(expected), ObjectCounts::Keys(restored)) => {
            if expected == restored {
                Vec::new()
            } else {
                vec![format!(
                    "keys: {expected} at dump time, {restored} restored"
                )]
            }
        }
        (ObjectCounts::Tables(expected), ObjectCounts::Tables(restored)) => {
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
        _ => vec!["dump-time and restored counts are of different kinds".into()],
    }
}

/// Restores a verified backup into a scratch target on `server` and compares counts.
pub async fn run_drill(
    verified: &VerifiedBackup,
    server: &DatabaseSource,
    progress: &Progress,
) -> Result<DrillReport, BackupError> {
    let databases = verified.manifest().databases.clone();
    let scratch = Scratch::new(server, &databases)?;
    let target = scratch.target(&databases, verified.manifest().database_properties.as_ref());
    let scratch_target = scratch.describe();
    let outcome = async {
        let stream = server.restore(&target).await?;
        let restore = verified.restore_into(stream, progress).await?;
        let restored = server.count_restored(&target, &databases).await?;
        Ok::<_, BackupError>((restore, restored))
    }
    .await;
    let removed = scratch.remove(server).await;
    let (restore, restored) = outcome?;
    if let Err(error) = removed {
        tracing::warn!(%error, target = %scratch_target, "could not remove the drill's scratch target");
    }
    let expected = verified.manifest().counts.clone();
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
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn counts_comparison_names_each_difference() {
        let expected = ObjectCounts::Tables(BTreeMap::from([
            ("public.a".to_string(), 3),
            ("public.b".to_string(), 5),
        ]));
        assert!(compare_counts(&expected, &expected).is_empty());
        let restored = ObjectCounts::Tables(BTreeMap::from([
            ("public.a".to_string(), 2),
            ("public.c".to_string(), 1),
        ]));
        let differences = compare_counts(&expected, &restored);
        assert_eq!(differences.len(), 3, "{differences:?}");
        assert!(compare_counts(&ObjectCounts::Keys(3), &ObjectCounts::Keys(3)).is_empty());
        assert_eq!(
            compare_counts(&ObjectCounts::Keys(3), &ObjectCounts::Keys(4)).len(),
            1
        );
        assert_eq!(compare_counts(&ObjectCounts::Keys(3), &restored).len(), 1);
    }
}
