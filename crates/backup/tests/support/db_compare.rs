//! Shared test support for backup round trips against real servers: source configs for the
//! testkit services, whole-stream helpers, and the equality checks the issue asks for —
//! PostgreSQL: a plain `pg_dump` of both databases is identical; MariaDB: `CHECKSUM TABLE` and
//! `SHOW CREATE TABLE` equal for every table; Redis: `DEBUG DIGEST` equal.
//!
//! Include it from a test file with
//! `#[path = "support/db_compare.rs"] mod db_compare;` (no `mod.rs`, so test files of other
//! work can have their own `support/` modules).

#![allow(dead_code)]

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vertice_backup::source::mariadb::MariadbConfig;
use vertice_backup::source::postgres::PostgresConfig;
use vertice_backup::source::redis::RedisConfig;
use vertice_backup::source::{DumpStream, PasswordSource, RestoreStream, Secret};
use vertice_testkit::services::{MariaDb, Postgres, Redis};

/// A config for `database` on the test server, password given in memory.
pub fn postgres_config(server: &Postgres, database: &str) -> PostgresConfig {
    PostgresConfig {
        host: server.host().to_owned(),
        port: server.port(),
        user: server.superuser().to_owned(),
        password: PasswordSource::Value(Secret::new(server.password())),
        database: database.to_owned(),
        maintenance_database: "postgres".to_owned(),
        bin_dir: Some(server.bin_dir().to_path_buf()),
        connect_timeout_seconds: 5,
    }
}

/// A config for `databases` (empty: all) on the test server.
pub fn mariadb_config(server: &MariaDb, databases: &[&str]) -> MariadbConfig {
    MariadbConfig {
        host: server.host().to_owned(),
        port: server.port(),
        user: server.user().to_owned(),
        password: PasswordSource::Value(Secret::new(server.password())),
        databases: databases.iter().map(|name| (*name).to_owned()).collect(),
        routines: true,
        events: true,
        bin_dir: None,
        connect_timeout_seconds: 5,
    }
}

/// A config for the test server.
pub fn redis_config(server: &Redis) -> RedisConfig {
    RedisConfig {
        host: server.host().to_owned(),
        port: server.port(),
        username: None,
        password: match server.password() {
            Some(password) => PasswordSource::Value(Secret::new(password)),
            None => PasswordSource::None,
        },
        bin_dir: None,
    }
}

/// Reads a whole dump (small test data only) and checks the tool succeeded.
pub async fn read_dump(mut stream: DumpStream) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream.reader.read_to_end(&mut bytes).await?;
    stream.finish().await.context("the dump tool failed")?;
    Ok(bytes)
}

/// Writes a whole dump into a restore and waits for the tool.
pub async fn write_restore(mut stream: RestoreStream, bytes: &[u8]) -> anyhow::Result<()> {
    // A tool that fails early closes its stdin; its exit status is the better error.
    let written = stream.writer.write_all(bytes).await;
    let shut = stream.writer.shutdown().await;
    stream.finish().await?;
    written?;
    shut?;
    Ok(())
}

/// A plain-SQL `pg_dump` of `database`, for comparing two databases.
pub async fn postgres_plain_dump(server: &Postgres, database: &str) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::from(server.client_command("pg_dump"));
    // PGDATABASE is never parsed as a connection string, so any name is safe here.
    command.env("PGDATABASE", database).arg("--format=plain");
    let output = command.output().await?;
    if !output.status.success() {
        bail!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // pg_dump ≥ 15.14 brackets its output with `\restrict <random key>`/`\unrestrict <key>`
    // (a new key every run): not content, so left out of the comparison.
    let text = String::from_utf8(output.stdout)?;
    Ok(text
        .lines()
        .filter(|line| !line.starts_with("\\restrict ") && !line.starts_with("\\unrestrict "))
        .map(|line| format!("{line}\n"))
        .collect())
}

/// Fails with the first differing line (not two whole dumps) when the texts differ.
pub fn assert_same_text(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let mut right_lines = right.lines();
    for (number, line) in left.lines().enumerate() {
        let other = right_lines.next();
        if other != Some(line) {
            panic!(
                "{what} differ at line {}:\n  left:  {line:?}\n  right: {other:?}",
                number + 1
            );
        }
    }
    panic!(
        "{what} differ: the right one has extra lines, e.g. {:?}",
        right_lines.next()
    );
}

/// `SHOW CREATE TABLE` and `CHECKSUM TABLE` of every base table in `database`, by table name.
pub async fn mariadb_table_fingerprints(
    server: &MariaDb,
    database: &str,
) -> anyhow::Result<BTreeMap<String, (String, String)>> {
    let hex_db: String = database.bytes().map(|b| format!("{b:02X}")).collect();
    let tables = server
        .sql(&format!(
            "SELECT HEX(TABLE_NAME) FROM information_schema.TABLES \
             WHERE HEX(TABLE_SCHEMA) = '{hex_db}' AND TABLE_TYPE = 'BASE TABLE'"
        ))
        .await?;
    let mut result = BTreeMap::new();
    for hex in tables.lines().filter(|l| !l.is_empty()) {
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        let table = String::from_utf8(bytes)?;
        let quoted = format!(
            "`{}`.`{}`",
            database.replace('`', "``"),
            table.replace('`', "``")
        );
        let checksum = server
            .sql(&format!("CHECKSUM TABLE {quoted} EXTENDED"))
            .await?;
        let checksum = checksum
            .trim()
            .rsplit('\t')
            .next()
            .unwrap_or_default()
            .to_owned();
        let create = server
            .sql(&format!("SHOW CREATE TABLE {quoted}"))
            .await?
            .split_once('\t')
            .map(|(_, create)| create.to_owned())
            .unwrap_or_default();
        result.insert(table, (checksum, create));
    }
    Ok(result)
}

/// `DEBUG DIGEST` of a testkit Redis (started with `--enable-debug-command yes`).
pub async fn redis_digest(server: &Redis) -> anyhow::Result<String> {
    Ok(server.cli(&["DEBUG", "DIGEST"]).await?.trim().to_owned())
}
