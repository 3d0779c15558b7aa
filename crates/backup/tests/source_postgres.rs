//! The PostgreSQL source against a real PostgreSQL 15 server from testkit: dump → restore into a
//! new database → a plain `pg_dump` of both is identical; counts match and are consistent with
//! the dump under concurrent writes; hostile names; clean errors without the password.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;

use std::collections::BTreeMap;

use db_compare::{
    assert_same_text, postgres_config, postgres_plain_dump, read_dump, write_restore,
};
use vertice_backup::source::postgres::{PostgresRestoreOptions, PostgresSource, quote_ident};
use vertice_backup::source::{Engine, ObjectCounts, PasswordSource, SourceError, TableRows};
use vertice_testkit::services::Postgres;

const HOSTILE_DB: &str = "we\"ird; DROP DATABASE postgres; -- 'ü'";
const HOSTILE_SCHEMA: &str = "s \"x\"; ünï";
const HOSTILE_TABLE: &str = "t'a\"b; DELETE FROM x; 表";

async fn server() -> Postgres {
    Postgres::start().await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL 15 is needed for these tests (Debian: apt-get install postgresql \
             postgresql-client, or `cargo xtask tools`): {error:#}"
        )
    })
}

/// A database with hostile names, several types, a view, a sequence, an index and a function.
async fn seed(server: &Postgres, database: &str) {
    server.create_database(database).await.unwrap();
    let schema = quote_ident(HOSTILE_SCHEMA);
    let table = format!("{schema}.{}", quote_ident(HOSTILE_TABLE));
    let sql = format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {table} (id serial PRIMARY KEY, name text, data bytea, at timestamptz, \
             doc jsonb, n numeric(20,5));
         INSERT INTO {table} (name, data, at, doc, n)
             SELECT 'row ' || g || ' ü ''q'' \"d\" \\ ;', decode(md5(g::text), 'hex'),
                    '2024-01-01'::timestamptz + g * interval '1 hour',
                    jsonb_build_object('g', g), g / 7.0
             FROM generate_series(1, 500) g;
         INSERT INTO {table} (name) VALUES (NULL);
         CREATE INDEX ON {table} (name);
         CREATE TABLE public.plain (k int PRIMARY KEY, v text);
         INSERT INTO public.plain SELECT g, repeat('x', g % 50) FROM generate_series(1, 1234) g;
         CREATE TABLE public.empty (k int);
         CREATE VIEW public.v AS SELECT count(*) FROM public.plain;
         CREATE SEQUENCE public.seq START 42;
         SELECT nextval('public.seq');
         CREATE FUNCTION public.f(x int) RETURNS int LANGUAGE sql AS $$ SELECT x + 1 $$;"
    );
    server.sql_in(database, &sql).await.unwrap();
}

/// A new database holding what `sql` creates, and a source that dumps it.
async fn seeded(server: &Postgres, database: &str, sql: &str) -> PostgresSource {
    server.create_database(database).await.unwrap();
    server.sql_in(database, sql).await.unwrap();
    PostgresSource::new(postgres_config(server, database))
}

fn expected_counts() -> TableRows {
    BTreeMap::from([
        (
            HOSTILE_SCHEMA.to_owned(),
            BTreeMap::from([(HOSTILE_TABLE.to_owned(), 501)]),
        ),
        (
            "public".to_owned(),
            BTreeMap::from([("plain".to_owned(), 1234), ("empty".to_owned(), 0)]),
        ),
    ])
}

#[tokio::test]
async fn round_trip_with_hostile_names_is_identical() {
    let server = server().await;
    seed(&server, HOSTILE_DB).await;
    // The password from a file, as a mounted Secret would give it.
    let password_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(password_file.path(), format!("{}\n", server.password())).unwrap();
    let mut config = postgres_config(&server, HOSTILE_DB);
    config.password = PasswordSource::File(password_file.path().to_path_buf());
    let source = PostgresSource::new(config);

    let info = source.info().await.unwrap();
    assert_eq!(info.engine, Engine::Postgres);
    assert!(info.server_version.starts_with("15"), "{info:?}");
    assert!(
        info.tool_versions["pg_dump"].contains("PostgreSQL"),
        "{info:?}"
    );

    let started = source.dump().await.unwrap();
    assert_eq!(started.databases, [HOSTILE_DB]);
    let dump = read_dump(started.stream).await.unwrap();
    let counts = started.counts.await.unwrap();
    assert_eq!(counts, ObjectCounts::Rows(expected_counts()));
    assert!(dump.starts_with(b"PGDMP"), "custom format expected");

    let target = "restored \"copy\"; ü";
    let options = PostgresRestoreOptions {
        database: target.to_owned(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    };
    write_restore(source.restore(&options).await.unwrap(), &dump)
        .await
        .unwrap();

    let original = postgres_plain_dump(&server, HOSTILE_DB).await.unwrap();
    let restored = postgres_plain_dump(&server, target).await.unwrap();
    assert!(original.contains("CREATE FUNCTION public.f"));
    assert_same_text(&original, &restored, "plain dumps");
    assert_eq!(source.count_rows(Some(target)).await.unwrap(), counts);
    // No staging database is left behind.
    let staging = server
        .sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'vertice\\_restore\\_%'")
        .await
        .unwrap();
    assert_eq!(staging.trim(), "0");
}

#[tokio::test]
async fn counts_come_from_the_dump_snapshot_under_concurrent_writes() {
    let server = server().await;
    let source = seeded(
        &server,
        "busy",
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);",
    )
    .await;
    let started = source.dump().await.unwrap();
    // Committed while the dump runs (its pipe is not read yet): neither the dump nor the
    // counts may see these rows.
    server
        .sql_in("busy", "INSERT INTO t SELECT generate_series(1, 50);")
        .await
        .unwrap();
    let dump = read_dump(started.stream).await.unwrap();
    let counts = started.counts.await.unwrap();
    assert_eq!(
        counts,
        ObjectCounts::Rows(BTreeMap::from([(
            "public".to_owned(),
            BTreeMap::from([("t".to_owned(), 100)])
        )]))
    );
    let options = PostgresRestoreOptions {
        database: "busy_copy".to_owned(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    };
    write_restore(source.restore(&options).await.unwrap(), &dump)
        .await
        .unwrap();
    assert_eq!(source.count_rows(Some("busy_copy")).await.unwrap(), counts);
}

#[tokio::test]
async fn restore_refuses_an_existing_target_unless_overwrite() {
    let server = server().await;
    let source = seeded(
        &server,
        "src",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('new');",
    )
    .await;
    seeded(
        &server,
        "existing",
        "CREATE TABLE old (v text); INSERT INTO old VALUES ('old');",
    )
    .await;
    let dump = read_dump(source.dump().await.unwrap().stream)
        .await
        .unwrap();

    let mut options = PostgresRestoreOptions {
        database: "existing".to_owned(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    };
    let refused = source.restore(&options).await;
    assert!(
        matches!(&refused, Err(SourceError::TargetExists { target }) if target == "existing"),
        "{:?}",
        refused.err()
    );
    assert_eq!(
        server
            .sql_in("existing", "SELECT v FROM old")
            .await
            .unwrap()
            .trim(),
        "old"
    );

    options.overwrite = true;
    write_restore(source.restore(&options).await.unwrap(), &dump)
        .await
        .unwrap();
    assert_eq!(
        server
            .sql_in("existing", "SELECT v FROM t")
            .await
            .unwrap()
            .trim(),
        "new"
    );
    let old_table = server
        .sql_in("existing", "SELECT to_regclass('public.old') IS NULL")
        .await
        .unwrap();
    assert_eq!(
        old_table.trim(),
        "t",
        "the overwritten database was replaced"
    );
}

#[tokio::test]
async fn failed_restore_leaves_the_target_untouched() {
    let server = server().await;
    let source = seeded(
        &server,
        "keep",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept');",
    )
    .await;

    // Garbage into a new target: an error, and no database (nor staging database) remains.
    let options = PostgresRestoreOptions {
        database: "never".to_owned(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    };
    let error = write_restore(
        source.restore(&options).await.unwrap(),
        b"this is not a pg_dump archive",
    )
    .await
    .unwrap_err();
    let error = error.downcast::<SourceError>().unwrap();
    assert!(
        matches!(&error, SourceError::Tool { tool, .. } if tool == "pg_restore"),
        "{error}"
    );
    assert!(!source.database_exists("never").await.unwrap());

    // Garbage over an existing target with overwrite: the old database is still there.
    let options = PostgresRestoreOptions {
        database: "keep".to_owned(),
        overwrite: true,
        no_owner: false,
        no_privileges: false,
        properties: None,
    };
    let stream = source.restore(&options).await.unwrap();
    assert!(write_restore(stream, b"PGDMP garbage").await.is_err());
    assert_eq!(
        server
            .sql_in("keep", "SELECT v FROM t")
            .await
            .unwrap()
            .trim(),
        "kept"
    );
    let staging = server
        .sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'vertice\\_restore\\_%'")
        .await
        .unwrap();
    assert_eq!(staging.trim(), "0");
}

#[tokio::test]
async fn database_down_or_wrong_password_is_a_clean_connect_error() {
    let mut server = server().await;
    server.create_database("d").await.unwrap();

    // Wrong password: a connect error that does not contain it.
    let wrong = "Wr0ng-pa55word-Zq";
    let mut config = postgres_config(&server, "d");
    config.password = PasswordSource::Value(vertice_backup::source::Secret::new(wrong));
    let error = PostgresSource::new(config).dump().await.err().unwrap();
    assert!(
        matches!(
            error,
            SourceError::Connect {
                engine: Engine::Postgres,
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.to_string().contains(wrong), "{error}");
    assert!(!format!("{error:?}").contains(wrong), "{error:?}");

    // Server down: a connect error, no password either.
    let source = PostgresSource::new(postgres_config(&server, "d"));
    server.kill();
    let error = source.dump().await.err().unwrap();
    assert!(matches!(error, SourceError::Connect { .. }), "{error}");
    assert!(!error.to_string().contains(server.password()), "{error}");
    let error = source
        .restore(&PostgresRestoreOptions {
            database: "x".to_owned(),
            overwrite: false,
            no_owner: false,
            no_privileges: false,
            properties: None,
        })
        .await
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Connect { .. }), "{error}");
}

#[tokio::test]
async fn globals_dump_holds_the_roles() {
    let server = server().await;
    server
        .sql("CREATE ROLE \"app \"\"role\"\"\" LOGIN PASSWORD 'rolepw'")
        .await
        .unwrap();
    let source = PostgresSource::new(postgres_config(&server, "postgres"));
    let globals = read_dump(source.dump_globals(false).await.unwrap())
        .await
        .unwrap();
    let globals = String::from_utf8(globals).unwrap();
    assert!(
        globals.contains("CREATE ROLE \"app \"\"role\"\"\""),
        "{globals}"
    );
    // Replaying into the same server: existing roles are reported, not fatal.
    write_restore(source.restore_globals().await.unwrap(), globals.as_bytes())
        .await
        .unwrap();
}
