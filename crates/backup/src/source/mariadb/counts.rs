//! Counting what a MariaDB server holds (rows per table, the packet limit): what the manifest
//! records at dump time and a drill compares after a restore.

use super::*;

impl MariadbSource {
    /// The target server's `max_allowed_packet` in bytes (the global value: the one a new
    /// session such as the restore's gets).
    pub async fn max_allowed_packet(&self) -> Result<u64, SourceError> {
        let rows = self
            .query_rows("SELECT @@GLOBAL.max_allowed_packet;")
            .await?;
        let value = rows
            .first()
            .and_then(|row| row.first())
            .cloned()
            .unwrap_or_default();
        value.parse::<u64>().map_err(|_| {
            SourceError::Other(format!(
                "unexpected max_allowed_packet {value:?} from mariadb"
            ))
        })
    }

    /// Exact row counts of every base table in `databases`, by database then table, in one
    /// consistent-snapshot transaction.
    pub async fn count_rows(&self, databases: &[String]) -> Result<ObjectCounts, SourceError> {
        if databases.is_empty() {
            return Ok(ObjectCounts::Rows(BTreeMap::new()));
        }
        let names: Vec<String> = databases.iter().map(|name| hex_literal(name)).collect();
        let tables = self
            .query_rows(&format!(
                "SELECT HEX(TABLE_SCHEMA), HEX(TABLE_NAME) FROM information_schema.TABLES \
                 WHERE TABLE_TYPE = 'BASE TABLE' AND HEX(TABLE_SCHEMA) IN ({}) \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME;",
                names.join(", ")
            ))
            .await?;
        let mut script = String::from(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n\
             START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;\n",
        );
        let mut expected = 0usize;
        for row in &tables {
            let [schema_hex, table_hex] = row.as_slice() else {
                return Err(SourceError::Other(
                    "unexpected table list from mariadb".to_owned(),
                ));
            };
            let schema = decode_hex_field(schema_hex)?;
            let table = decode_hex_field(table_hex)?;
            // The hex strings are [0-9A-F] only, safe as literals; they name the row in the
            // output without any escaping questions.
            script.push_str(&format!(
                "SELECT '{schema_hex}', '{table_hex}', COUNT(*) FROM {}.{};\n",
                quote_ident(&schema),
                quote_ident(&table)
            ));
            expected += 1;
        }
        script.push_str("COMMIT;\n");
        let rows = self.query_rows(&script).await?;
        let mut counts: TableRows = BTreeMap::new();
        let mut counted = 0usize;
        for row in rows {
            let [schema_hex, table_hex, count] = row.as_slice() else {
                return Err(SourceError::Other(
                    "unexpected count output from mariadb".to_owned(),
                ));
            };
            let count = count.parse::<u64>().map_err(|_| {
                SourceError::Other(format!("unexpected row count {count:?} from mariadb"))
            })?;
            let previous = counts
                .entry(decode_hex_field(schema_hex)?)
                .or_default()
                .insert(decode_hex_field(table_hex)?, count);
            if previous.is_none() {
                counted += 1;
            }
        }
        if counted != expected {
            return Err(SourceError::Other(format!(
                "counted {counted} tables, expected {expected}"
            )));
        }
        Ok(ObjectCounts::Rows(counts))
    }

    /// Counts what a restore with `options` produced, keyed by the dumped database names so
    /// the counts compare with the manifest's.
    pub async fn count_restored(
        &self,
        options: &MariadbRestoreOptions,
        dumped_databases: &[String],
    ) -> Result<ObjectCounts, SourceError> {
        let targets = restore_targets(options)?;
        let ObjectCounts::Rows(counts) = self.count_rows(&targets).await? else {
            return Err(SourceError::Other(
                "unexpected key counts for MariaDB".to_owned(),
            ));
        };
        match (targets.as_slice(), dumped_databases) {
            ([target], [dumped]) if target != dumped => {
                Ok(ObjectCounts::Rows(rekey_database(counts, target, dumped)))
            }
            _ => Ok(ObjectCounts::Rows(counts)),
        }
    }
}
