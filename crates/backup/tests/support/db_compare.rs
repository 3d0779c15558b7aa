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
pub async fn write_restore(stream: RestoreStream, bytes: &[u8]) -> anyhow::Result<()> {
    let RestoreStream {
        mut writer,
        completion,
        staged,
    } = stream;
    // A tool that fails early closes its stdin; its exit status is the better error.
    let written = writer.write_all(bytes).await;
    let shut = writer.shutdown().await;
    drop(writer);
    let outcome = match (completion.await, written, shut) {
        (Err(error), _, _) => Err(anyhow::Error::from(error)),
        (Ok(()), Err(error), _) | (Ok(()), Ok(()), Err(error)) => Err(error.into()),
        (Ok(()), Ok(()), Ok(())) => Ok(()),
    };
    match outcome {
        Ok(()) => Ok(staged.commit().await?),
        Err(error) => {
            staged.abort().await;
            Err(error)
        }
    }
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

/// Creates keys of every type in logical database `db` of a testkit Redis, in one Lua script:
/// for each of `n` rounds a string (binary bytes, every tenth with a TTL of an hour), a hash, a
/// list, a set, a sorted set and a stream; once: a stream with a consumer group and a pending
/// entry, keys with hostile names (spaces, quotes, newlines, NUL, unicode), large collections
/// (so the server uses its big encodings, not only listpacks) and one string of `random_bytes`
/// incompressible bytes (so a snapshot spans many chunks).
pub async fn seed_redis(server: &Redis, db: u32, n: u32, random_bytes: u32) -> anyhow::Result<()> {
    // Park–Miller (x·16807 mod 2³¹−1) stays exact in Lua's doubles; its bytes do not compress.
    const SCRIPT: &str = r#"
        local n, tag, size = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
        for i = 1, n do
            local k = tag .. ':' .. i
            redis.call('SET', 'str:' .. k, string.rep(string.char(i % 256, 0, 255, 10), 1 + i % 50))
            if i % 10 == 0 then redis.call('EXPIRE', 'str:' .. k, 3600) end
            redis.call('HSET', 'hash:' .. k, 'a', i, 'b', 'ü' .. i, 'bin', string.char(0, 1, i % 256))
            redis.call('RPUSH', 'list:' .. k, i, 'x', string.char(0), 'ünï')
            redis.call('SADD', 'set:' .. k, i, i * 2, 'm')
            redis.call('ZADD', 'zset:' .. k, i, 'a', -i / 3, 'b', 0, 'c')
            redis.call('XADD', 'stream:' .. k, '*', 'f', i, 'g', 'v')
        end
        redis.call('XADD', 'events', '1-1', 'type', 'created')
        redis.call('XADD', 'events', '2-1', 'type', 'paid')
        redis.call('XGROUP', 'CREATE', 'events', 'workers', '0')
        redis.call('XREADGROUP', 'GROUP', 'workers', 'alice', 'COUNT', 1, 'STREAMS', 'events', '>')
        redis.call('SET', 'key with spaces "quotes" \'single\'\nnewline ü 😀', 'v')
        redis.call('SET', string.char(0, 255, 0), string.char(255, 0))
        redis.call('PEXPIRE', 'key with spaces "quotes" \'single\'\nnewline ü 😀', 7200000)
        for i = 1, 2000 do
            redis.call('HSET', 'big:hash', 'field' .. i, string.rep('h', i % 100))
            redis.call('RPUSH', 'big:list', i)
            redis.call('SADD', 'big:set', 'member' .. i)
            redis.call('SADD', 'big:intset', i)
            redis.call('ZADD', 'big:zset', i * 1.5, 'member' .. i)
        end
        local parts, x = {}, 12345
        for i = 1, size do
            x = (x * 16807) % 2147483647
            parts[i] = string.char(x % 256)
        end
        redis.call('SET', 'big:random', table.concat(parts))
        return redis.call('DBSIZE')
    "#;
    server
        .cli(&[
            "-n",
            &db.to_string(),
            "EVAL",
            SCRIPT,
            "0",
            &n.to_string(),
            &format!("db{db}"),
            &random_bytes.to_string(),
        ])
        .await?;
    Ok(())
}

/// The number of keys in all 16 logical databases, by `DBSIZE` (independent of `INFO`).
pub async fn redis_key_count(server: &Redis) -> anyhow::Result<u64> {
    let mut total = 0;
    for db in 0..16 {
        let size = server.cli(&["-n", &db.to_string(), "DBSIZE"]).await?;
        total += size.trim().parse::<u64>()?;
    }
    Ok(total)
}

/// Keys in databases 0–15 of a testkit Redis, and how many carry an expiry (`TTL` ≥ 0 is
/// not asked key by key: `INFO keyspace` counts them, as the engine does).
pub async fn redis_key_counts(
    server: &Redis,
) -> anyhow::Result<vertice_backup::source::RedisKeyCounts> {
    let keys = redis_key_count(server).await?;
    let info = server.cli(&["INFO", "keyspace"]).await?;
    let expiring = info
        .lines()
        .filter_map(|line| line.trim_end().split_once(":keys="))
        .filter_map(|(_, fields)| fields.split(',').find_map(|f| f.strip_prefix("expires=")))
        .map(|n| n.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    Ok(vertice_backup::source::RedisKeyCounts { keys, expiring })
}
