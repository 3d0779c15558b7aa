//! PostgreSQL row counts read from the `pg_dump -Fc -Z0` archive as it streams (instead of a
//! `count(*)` of every table on the server) equal the SQL counts, on a real PostgreSQL 15: rows
//! whose values hold newlines, tabs, backslashes, `\.` and empty strings, an empty table,
//! partitions, an unlogged table, large objects with newline bytes, a 5 MB value, many rows,
//! and dotted and non-ASCII names; whatever way the stream is cut into reads. Archives the
//! counter cannot count exactly (compressed, `INSERT` data, cut short) are errors, never
//! wrong counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;

use std::collections::BTreeMap;

use db_compare::{postgres_config, read_dump};
use vertice_backup::source::ObjectCounts;
use vertice_backup::source::postgres::PostgresSource;
use vertice_backup::source::postgres::archive_counts::{ArchiveCounter, ArchiveError};
use vertice_testkit::services::Postgres;

const SEED: &str = r#"
CREATE SCHEMA "a.b";
CREATE SCHEMA "ünï";
CREATE TABLE "a.b"."c.d" (id int, v text);
INSERT INTO "a.b"."c.d" VALUES
    (1, E'two\nlines'), (2, E'tab\there'), (3, E'back\\slash'), (4, E'\\.'),
    (5, E'ends with \\.'), (6, NULL), (7, ''), (8, E'\r\n'),
    -- COPY lines of 10 and 266 bytes: their length prefixes hold newline bytes.
    (9, 'abcdefg'), (10, repeat('y', 262));
CREATE TABLE "ünï"."表" (v text);
INSERT INTO "ünï"."表" VALUES (''), (''), ('');
CREATE TABLE public.empty (k int);
CREATE TABLE public.many (k int, v text);
INSERT INTO public.many SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
CREATE TABLE public.big (v text);
INSERT INTO public.big SELECT repeat('x', 5 * 1024 * 1024);
CREATE TABLE public.parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE public.parted_low PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.parted_high PARTITION OF public.parted FOR VALUES FROM (10) TO (100);
INSERT INTO public.parted SELECT g, 'p' FROM generate_series(1, 30) g;
CREATE UNLOGGED TABLE public.scratch (k int);
INSERT INTO public.scratch VALUES (1), (2);
SELECT lo_from_bytea(0, E'\\x0a0a0a5c2e0a'::bytea);
SELECT lo_from_bytea(0, ''::bytea);
"#;

/// The server, with a new database `database` holding [`SEED`].
async fn seeded(database: &str) -> Postgres {
    let server = Postgres::start().await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL 15 is needed for these tests (Debian: apt-get install postgresql \
             postgresql-client, or `cargo xtask tools`): {error:#}"
        )
    });
    server.create_database(database).await.unwrap();
    server.sql_in(database, SEED).await.unwrap();
    server
}

/// `pg_dump -Fc` of the test database with `extra` flags, from the server's own tools.
fn pg_dump(server: &Postgres, database: &str, extra: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new(server.bin_dir().join("pg_dump"))
        .args(["--format=custom", "--no-password"])
        .args(extra)
        .arg(format!(
            "--dbname=host={} port={} user={} dbname={database}",
            server.host(),
            server.port(),
            server.superuser()
        ))
        .env("PGPASSWORD", server.password())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Feeds `archive` to a counter in pieces of `piece` bytes.
fn count_in_pieces(
    archive: &[u8],
    piece: usize,
) -> Result<vertice_backup::source::TableRows, ArchiveError> {
    let mut counter = ArchiveCounter::new();
    for bytes in archive.chunks(piece) {
        counter.feed(bytes);
    }
    counter.finish()
}

#[tokio::test]
async fn archive_counts_equal_the_sql_counts_however_the_stream_is_read() {
    let server = seeded("counted").await;
    let source = PostgresSource::new(postgres_config(&server, "counted"));

    let sql = source.count_rows(None).await.unwrap();
    let ObjectCounts::Rows(sql_rows) = &sql else {
        panic!("row counts expected, got {sql:?}");
    };
    // The SQL counts themselves hold what was inserted (so equal counts mean right counts).
    let expected: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::from([
        ("a.b", BTreeMap::from([("c.d", 10)])),
        ("ünï", BTreeMap::from([("表", 3)])),
        (
            "public",
            BTreeMap::from([
                ("big", 1),
                ("empty", 0),
                ("many", 50000),
                ("parted_high", 21),
                ("parted_low", 9),
                ("scratch", 2),
            ]),
        ),
    ]);
    let as_str: BTreeMap<&str, BTreeMap<&str, u64>> = sql_rows
        .iter()
        .map(|(schema, tables)| {
            let tables = tables.iter().map(|(t, n)| (t.as_str(), *n)).collect();
            (schema.as_str(), tables)
        })
        .collect();
    assert_eq!(as_str, expected);

    // Through the source: the dump's counts come from its own archive.
    let started = source.dump().await.unwrap();
    let archive = read_dump(started.stream).await.unwrap();
    assert_eq!(started.counts.await.unwrap(), sql);

    // The same archive, cut anywhere: inside integers, strings, rows and the end marker.
    for piece in [1, 2, 3, 7, 4096, 65536, archive.len()] {
        assert_eq!(
            count_in_pieces(&archive, piece).as_ref(),
            Ok(sql_rows),
            "archive read in pieces of {piece} bytes"
        );
    }
}

#[tokio::test]
async fn archives_that_cannot_be_counted_exactly_are_errors() {
    let server = seeded("uncountable").await;

    let plain = pg_dump(&server, "uncountable", &["--compress=0"]);
    let cut = &plain[..plain.len() - 3];
    assert_eq!(count_in_pieces(cut, 4096), Err(ArchiveError::Truncated));
    let no_data_end = &plain[..plain.len() / 2];
    assert_eq!(
        count_in_pieces(no_data_end, 4096),
        Err(ArchiveError::Truncated)
    );

    let compressed = pg_dump(&server, "uncountable", &["--compress=6"]);
    assert!(
        matches!(
            count_in_pieces(&compressed, 4096),
            Err(ArchiveError::Unsupported(_))
        ),
        "a compressed archive's lines are not visible"
    );

    let inserts = pg_dump(&server, "uncountable", &["--compress=0", "--inserts"]);
    assert!(
        matches!(
            count_in_pieces(&inserts, 4096),
            Err(ArchiveError::Unsupported(_))
        ),
        "INSERT statements are not one line per row"
    );

    let mut not_archive = plain.clone();
    not_archive[0] = b'X';
    assert!(matches!(
        count_in_pieces(&not_archive, 4096),
        Err(ArchiveError::Unsupported(_))
    ));
}
