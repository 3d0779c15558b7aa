//! Row counts are keyed by (schema, table) exactly as the server spells them, on PostgreSQL and
//! MariaDB: tables whose names hold dots, quotes, backticks and non-ASCII letters never share a
//! count, so a drill sees each of them — and a manifest written with the older joined
//! `schema.table` keys still opens, verifies its seal, and drills.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::collections::BTreeMap;
use std::sync::Arc;

use db_compare::{mariadb_config, postgres_config};
use pipeline::*;
use vertice_backup::backup::{BackupOptions, DumpInput};
use vertice_backup::drill::{compare_counts, quoted_table, run_drill};
use vertice_backup::keys::KeyRing;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::postgres::PostgresRestoreOptions;
use vertice_backup::source::{
    DatabaseSource, ObjectCounts, RestoreTarget, SourceConfig, TableRows,
};
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{MariaDb, Postgres};

/// (schema, table, rows): `a."b.c"` with 5 rows and `"a.b".c` with none join to the same
/// `a.b.c`; so do `"x.y"."z"` and `"x"."y.z"` (with counts the other way round); and names with
/// quotes, spaces and non-ASCII letters.
const POSTGRES_TABLES: &[(&str, &str, u64)] = &[
    ("a", "b.c", 5),
    ("a.b", "c", 0),
    ("x.y", "z", 3),
    ("x", "y.z", 0),
    ("q\"uote.d", "t.\"x\" . y", 2),
    ("ünï.cödé", "表.1", 4),
    ("public", "a.b.c", 1),
];

fn expected(tables: &[(&str, &str, u64)], rename_schema: Option<&str>) -> TableRows {
    let mut rows = TableRows::new();
    for (schema, table, n) in tables {
        let schema = rename_schema.unwrap_or(schema);
        rows.entry(schema.to_string())
            .or_default()
            .insert(table.to_string(), *n);
    }
    rows
}

/// What an older build wrote into the manifest for the same tables: `schema.table` joined with
/// a dot, a later table overwriting an earlier one with the same joined key.
fn joined(rows: &TableRows) -> BTreeMap<String, u64> {
    rows.iter()
        .flat_map(|(schema, tables)| {
            tables
                .iter()
                .map(move |(table, n)| (format!("{schema}.{table}"), *n))
        })
        .collect()
}

fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[tokio::test]
async fn postgres_dotted_names_are_counted_apart_and_drilled() {
    let server = Postgres::start().await.unwrap_or_else(|error| {
        panic!("PostgreSQL is needed (apt-get install postgresql, or cargo xtask tools): {error:#}")
    });
    server.create_database("dots").await.unwrap();
    let mut sql = String::new();
    for (schema, table, rows) in POSTGRES_TABLES {
        let qualified = format!("{}.{}", pg_ident(schema), pg_ident(table));
        sql.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE {qualified} (id int);
             INSERT INTO {qualified} SELECT g FROM generate_series(1, {rows}) g;\n",
            schema = pg_ident(schema)
        ));
    }
    server.sql_in("dots", &sql).await.unwrap();
    let source = DatabaseSource::new(SourceConfig::Postgres(postgres_config(&server, "dots")));
    let expected = expected(POSTGRES_TABLES, None);

    // The dump-time counts, in the manifest of a real backup.
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let started = source.dump().await.unwrap();
    let mut manifest = backup_input(
        &store,
        &BackupOptions::new("dots", Some(key(7))),
        DumpInput::from_started(started),
    )
    .await
    .unwrap();
    assert_eq!(manifest.counts, Some(ObjectCounts::Rows(expected.clone())));
    let json: serde_json::Value = serde_json::from_slice(&manifest.to_json().unwrap()).unwrap();
    assert_eq!(json["counts"]["rows"]["a"]["b.c"], 5, "{}", json["counts"]);
    assert_eq!(json["counts"]["rows"]["a.b"]["c"], 0, "{}", json["counts"]);

    // A drill restores and counts every one of them apart.
    let keys = KeyRing::new(vec![key(7)]);
    let progress = Arc::new(Progress::default());
    let verified = VerifiedBackup::verify(
        OpenedBackup::open(&store, "dots", &keys, 2).await.unwrap(),
        &progress,
    )
    .await
    .unwrap();
    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert_eq!(drill.restored, ObjectCounts::Rows(expected.clone()));
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);

    // A restored copy that lost the 5 rows of a."b.c": the comparison names that table and
    // no other, though "a.b".c has 0 rows too.
    let target = RestoreTarget::Postgres(PostgresRestoreOptions {
        database: "dots_copy".into(),
        overwrite: false,
        no_owner: true,
        no_privileges: true,
        properties: None,
    });
    verified
        .restore_into(source.restore(&target).await.unwrap(), &progress)
        .await
        .unwrap();
    server
        .sql_in("dots_copy", "DELETE FROM a.\"b.c\"; DELETE FROM \"x.y\".z;")
        .await
        .unwrap();
    let copy = source.count_restored(&target, &[]).await.unwrap();
    assert_eq!(
        compare_counts(manifest.counts.as_ref().unwrap(), &copy),
        [
            format!(
                "{}: 5 rows at dump time, 0 restored",
                quoted_table("a", "b.c")
            ),
            format!(
                "{}: 3 rows at dump time, 0 restored",
                quoted_table("x.y", "z")
            ),
        ]
    );

    // A manifest with the older joined keys (as an older build sealed it) still opens, and its
    // drill passes: the ambiguous a.b.c and x.y.z are left out, the others still compared.
    manifest.counts = Some(ObjectCounts::Tables(joined(&expected)));
    reseal(&mut manifest, &key(7));
    store.write_manifest(&manifest).await.unwrap();
    let verified = VerifiedBackup::verify(
        OpenedBackup::open(&store, "dots", &keys, 2).await.unwrap(),
        &progress,
    )
    .await
    .unwrap();
    assert!(matches!(
        verified.manifest().counts,
        Some(ObjectCounts::Tables(_))
    ));
    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    // ... and what the old keys can tell apart is still checked.
    let old = ObjectCounts::Tables(joined(&expected));
    let differences = compare_counts(&old, &copy);
    assert!(
        differences.is_empty(),
        "ambiguous keys only: {differences:?}"
    );
    server
        .sql_in("dots_copy", "DELETE FROM \"ünï.cödé\".\"表.1\";")
        .await
        .unwrap();
    let copy = source.count_restored(&target, &[]).await.unwrap();
    assert_eq!(
        compare_counts(&old, &copy),
        ["ünï.cödé.表.1: 4 rows at dump time, 0 restored"]
    );
}

fn maria_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// MariaDB: a database whose name holds a dot, with tables whose names hold dots, backticks and
/// non-ASCII letters; and two databases `a` and `a.b` whose tables `b.c` and `c` join alike.
#[tokio::test]
async fn mariadb_dotted_names_are_counted_apart_and_drilled() {
    let server = MariaDb::start().await.unwrap_or_else(|error| {
        panic!("MariaDB is needed (apt-get install mariadb-server mariadb-client): {error:#}")
    });
    let tables: &[(&str, &str, u64)] = &[
        ("shop.v2", "t.1", 4),
        ("shop.v2", "t", 0),
        ("shop.v2", "x`y.z", 2),
        ("shop.v2", "ñandú.表", 3),
    ];
    let pairs: &[(&str, &str, u64)] = &[("a", "b.c", 5), ("a.b", "c", 0)];
    for (database, table, rows) in tables.iter().chain(pairs) {
        let (db, t) = (maria_ident(database), maria_ident(table));
        // seq_1_to_0 would count down to 0: an empty table gets no INSERT.
        let insert = if *rows == 0 {
            String::new()
        } else {
            format!("INSERT INTO {db}.{t} SELECT seq FROM seq_1_to_{rows};")
        };
        server
            .sql(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .await
            .unwrap();
        server
            .sql_in(
                database,
                &format!("CREATE TABLE {db}.{t} (id INT); {insert}"),
            )
            .await
            .unwrap_or_else(|error| panic!("{database}.{table}: {error:#}"));
    }

    // Two databases whose joined keys collide are counted apart.
    let both = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(
        &server,
        &["a", "a.b"],
    )));
    let started = both.dump().await.unwrap();
    let counts = started.counts.await.unwrap();
    assert_eq!(counts, ObjectCounts::Rows(expected(pairs, None)));
    drop(started.stream);

    // One dotted database: backed up, drilled into a scratch database under another name
    // (counts filed back under the dumped name), every table compared.
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(&server, &["shop.v2"])));
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let started = source.dump().await.unwrap();
    let manifest = backup_input(
        &store,
        &BackupOptions::new("shop", Some(key(8))),
        DumpInput::from_started(started),
    )
    .await
    .unwrap();
    let expected = expected(tables, None);
    assert_eq!(manifest.counts, Some(ObjectCounts::Rows(expected.clone())));
    let progress = Arc::new(Progress::default());
    let verified = VerifiedBackup::verify(
        OpenedBackup::open(&store, "shop", &KeyRing::new(vec![key(8)]), 2)
            .await
            .unwrap(),
        &progress,
    )
    .await
    .unwrap();
    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    assert_eq!(drill.restored, ObjectCounts::Rows(expected));
}
