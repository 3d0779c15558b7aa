//! A restored PostgreSQL database is the database that was backed up — through the real
//! `vertice-backup` binary against real PostgreSQL 15 servers:
//! - database-level properties (encoding, LC_COLLATE/LC_CTYPE, ICU locale, settings of the
//!   database and of roles in it, comment, connection limit) survive, or the restore refuses
//!   naming the one the target server lacks (a libc locale compiled only for the source server);
//! - generated database names fit in 63 bytes, for long and multi-byte source names;
//! - tool errors carry the tool's message without libpq's password-file warning;
//! - a missing role's error names `--no-owner`/`--no-privileges`, which are independent;
//! - a dump `pg_restore` cannot complete names the commands that restore the rest by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::Path;

use cli_process::{Outcome, run};
use tokio::sync::OnceCell;
use vertice_testkit::services::{Postgres, PostgresOptions};

/// A libc locale the machine does not have installed: compiled for the source server only.
const SOURCE_ONLY_LOCALE: &str = "de_DE.ISO-8859-1";

/// The source server (it has [`SOURCE_ONLY_LOCALE`]) and its compiled locales.
struct Source {
    server: Postgres,
    _locales: tempfile::TempDir,
}

static SOURCE: OnceCell<Source> = OnceCell::const_new();
/// Another server, as the machine installs it: no extra locale, none of the source's roles.
static OTHER: OnceCell<Postgres> = OnceCell::const_new();
/// Held by each test for its whole run: tests check that no staging database is left, which
/// another test's restore in flight would make untrue.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn source() -> &'static Postgres {
    &SOURCE
        .get_or_init(|| async {
            let locales = tempfile::tempdir().unwrap();
            let output = std::process::Command::new("localedef")
                .args(["-i", "de_DE", "-f", "ISO-8859-1"])
                .arg(locales.path().join(SOURCE_ONLY_LOCALE))
                .output()
                .expect("localedef is needed (Debian: apt-get install locales)");
            assert!(output.status.success(), "localedef: {output:?}");
            // The server may run as the `postgres` OS user.
            let open = |path: &Path| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
            };
            open(locales.path());
            let server = Postgres::start_with(PostgresOptions {
                env: vec![("LOCPATH".to_owned(), locales.path().display().to_string())],
                ..PostgresOptions::default()
            })
            .await
            .unwrap();
            Source {
                server,
                _locales: locales,
            }
        })
        .await
        .server
}

async fn other() -> &'static Postgres {
    OTHER
        .get_or_init(|| async { Postgres::start().await.unwrap() })
        .await
}

/// `--engine postgres …` for `database` on `server`, password from a file in `dir`.
fn flags(server: &Postgres, database: &str, dir: &Path) -> Vec<String> {
    let password_file = dir.join(format!("pw-{}", server.port()));
    cli_process::postgres_flags(server, database, &password_file)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// Backs up `database` of `server` as `name` into the store in `dir`.
async fn backup(server: &Postgres, database: &str, dir: &Path, name: &str) {
    let store = dir.join("store").display().to_string();
    let mut args = strings(&[
        "backup",
        "--path",
        &store,
        "--name",
        name,
        "--no-encryption",
    ]);
    args.extend(flags(server, database, dir));
    run(&args).await.expect_code(0, "backup");
}

/// Restores backup `name` from the store in `dir` onto `server`, with `extra` flags, as JSON.
async fn restore(server: &Postgres, dir: &Path, name: &str, extra: &[&str]) -> Outcome {
    let store = dir.join("store").display().to_string();
    let mut args = strings(&[
        "restore", "--path", &store, "--name", name, "--output", "json",
    ]);
    args.extend(flags(server, "postgres", dir));
    args.extend(strings(extra));
    run(&args).await
}

/// The `error.message` of a failed JSON run.
fn error_message(outcome: &Outcome) -> String {
    outcome.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A string literal for the test's own SQL.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn ident(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// The database-level properties of `database`, read straight from the catalogs.
async fn properties(server: &Postgres, database: &str) -> String {
    let name = literal(database);
    let row = server
        .sql(&format!(
            "SELECT concat_ws(' | ', pg_encoding_to_char(encoding), datcollate, datctype, \
                    datlocprovider, daticulocale, datconnlimit, \
                    shobj_description(oid, 'pg_database')) \
             FROM pg_database WHERE datname = {name}"
        ))
        .await
        .unwrap();
    let settings = server
        .sql(&format!(
            "SELECT coalesce(r.rolname, '(database)') || ': ' || array_to_string(s.setconfig, '; ') \
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
             LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = {name} ORDER BY 1"
        ))
        .await
        .unwrap();
    assert!(
        !row.trim().is_empty(),
        "database {database:?} does not exist"
    );
    format!("{}\n{}", row.trim(), settings.trim())
}

async fn exists(server: &Postgres, database: &str) -> bool {
    server
        .sql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            literal(database)
        ))
        .await
        .unwrap()
        .trim()
        == "1"
}

/// No staging database of a failed restore is left behind.
async fn assert_no_staging(server: &Postgres) {
    let left = server
        .sql("SELECT string_agg(datname, ', ') FROM pg_database WHERE datname LIKE 'vertice\\_%'")
        .await
        .unwrap();
    assert!(left.trim().is_empty(), "left behind: {left}");
}

/// Creates `database` with the `CREATE DATABASE` options `options`, then runs `sql` in it.
async fn create(server: &Postgres, database: &str, options: &str, sql: &str) {
    server
        .sql(&format!("CREATE DATABASE {} {options}", ident(database)))
        .await
        .unwrap();
    if !sql.is_empty() {
        server.sql_in(database, sql).await.unwrap();
    }
}

#[tokio::test]
async fn a_sql_ascii_database_keeps_its_encoding_and_bytes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let dir = tempfile::tempdir().unwrap();
    create(
        server,
        "ascii src",
        "TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
        r"CREATE TABLE words (w text);
          INSERT INTO words VALUES (E'caf\xe9'), (E'\x80\xff raw'), ('plain');",
    )
    .await;
    let bytes = "SELECT string_agg(encode(w::bytea, 'hex'), ',' ORDER BY w) FROM words";
    let original = server.sql_in("ascii src", bytes).await.unwrap();
    backup(server, "ascii src", dir.path(), "ascii").await;

    let restored = restore(
        server,
        dir.path(),
        "ascii",
        &["--target-database", "ascii copy"],
    )
    .await;
    restored.expect_code(0, "restore of a SQL_ASCII database");
    assert_eq!(
        properties(server, "ascii copy").await,
        properties(server, "ascii src").await
    );
    assert!(
        properties(server, "ascii copy")
            .await
            .starts_with("SQL_ASCII | C | C"),
        "{}",
        properties(server, "ascii copy").await
    );
    assert_eq!(server.sql_in("ascii copy", bytes).await.unwrap(), original);
    assert!(original.contains("636166e9"), "{original}");
    // What failed in a UTF8 copy holding these bytes.
    server
        .sql_in("ascii copy", "SELECT upper(w) FROM words")
        .await
        .unwrap();

    // And the copy backs up and restores again, bytes intact.
    backup(server, "ascii copy", dir.path(), "ascii-copy").await;
    restore(
        server,
        dir.path(),
        "ascii-copy",
        &["--target-database", "ascii copy 2"],
    )
    .await
    .expect_code(0, "restore of the copy's backup");
    assert_eq!(
        server.sql_in("ascii copy 2", bytes).await.unwrap(),
        original
    );
}

#[tokio::test]
async fn settings_role_settings_comment_locale_and_limit_survive() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let dir = tempfile::tempdir().unwrap();
    let role = "app \"reader\"";
    server
        .sql(&format!("CREATE ROLE {}", ident(role)))
        .await
        .unwrap();
    let cases = [
        (
            "latin src",
            "TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' CONNECTION LIMIT 7",
        ),
        (
            "icu src",
            "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' \
             LC_COLLATE 'C' LC_CTYPE 'C'",
        ),
        (
            "german src",
            "TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'de_DE.ISO-8859-1' \
             LC_CTYPE 'de_DE.ISO-8859-1'",
        ),
    ];
    for (index, (database, options)) in cases.iter().enumerate() {
        let db = ident(database);
        create(
            server,
            database,
            options,
            "CREATE SCHEMA app; CREATE TABLE app.items (name text);
             INSERT INTO app.items VALUES ('mango'), ('Zebra'), ('apple');",
        )
        .await;
        for statement in [
            format!("ALTER DATABASE {db} SET search_path = app, \"$user\", public"),
            format!("ALTER DATABASE {db} SET statement_timeout = '42s'"),
            format!(r"ALTER DATABASE {db} SET app.note = E'it''s a \\ note, x=1'"),
            format!(
                "ALTER ROLE {} IN DATABASE {db} SET work_mem = '8MB'",
                ident(role)
            ),
            format!(
                "ALTER ROLE {} IN DATABASE {db} SET search_path = app",
                ident(role)
            ),
            format!(r"COMMENT ON DATABASE {db} IS E'the shop''s data \\ {index}'"),
        ] {
            server.sql(&statement).await.unwrap();
        }
        let name = format!("props-{index}");
        backup(server, database, dir.path(), &name).await;
        let copy = format!("{database} copy");
        restore(server, dir.path(), &name, &["--target-database", &copy])
            .await
            .expect_code(0, "restore");
        let expected = properties(server, database).await;
        assert_eq!(properties(server, &copy).await, expected, "{database}");
        assert!(expected.contains("statement_timeout=42s"), "{expected}");
        assert!(expected.contains("app \"reader\": "), "{expected}");

        // Over an existing target whose settings and comment have changed: the staged commit
        // gives the staging database the source's, then renames it into place.
        let copy_db = ident(&copy);
        for statement in [
            format!("ALTER DATABASE {copy_db} SET statement_timeout = '1s'"),
            format!("ALTER DATABASE {copy_db} SET lock_timeout = '3s'"),
            format!("COMMENT ON DATABASE {copy_db} IS 'stale'"),
        ] {
            server.sql(&statement).await.unwrap();
        }
        assert_ne!(properties(server, &copy).await, expected, "{database}");
        restore(
            server,
            dir.path(),
            &name,
            &["--target-database", &copy, "--overwrite"],
        )
        .await
        .expect_code(0, "restore --overwrite");
        assert_eq!(properties(server, &copy).await, expected, "{database}");
        assert_no_staging(server).await;

        // The application's first query: an unqualified table found through search_path,
        // the database's timeout in force, the order the collation gives.
        let order = "SELECT current_setting('statement_timeout') || ' ' || \
                     string_agg(name, ',' ORDER BY name) FROM items";
        let in_copy = server.sql_in(&copy, order).await.unwrap();
        assert_eq!(in_copy, server.sql_in(database, order).await.unwrap());
        assert!(in_copy.starts_with("42s "), "{in_copy}");
    }
    // The libc and ICU locales sort like the source, not like C (where 'Z' < 'a').
    for copy in ["german src copy", "icu src copy"] {
        let sorted = server
            .sql_in(
                copy,
                "SELECT string_agg(name, ',' ORDER BY name) FROM items",
            )
            .await
            .unwrap();
        assert_eq!(sorted.trim(), "apple,mango,Zebra", "{copy}");
    }
}

#[tokio::test]
async fn a_server_without_the_source_locale_refuses_naming_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let target = other().await;
    let dir = tempfile::tempdir().unwrap();
    create(
        server,
        "locale src",
        &format!(
            "TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE '{SOURCE_ONLY_LOCALE}' \
             LC_CTYPE '{SOURCE_ONLY_LOCALE}'"
        ),
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
    )
    .await;
    backup(server, "locale src", dir.path(), "locale").await;

    let refused = restore(
        target,
        dir.path(),
        "locale",
        &["--target-database", "locale copy"],
    )
    .await;
    refused.expect_code(4, "restore onto a server without the locale");
    let message = error_message(&refused);
    assert!(
        message.contains(&format!("LC_COLLATE \"{SOURCE_ONLY_LOCALE}\""))
            && message.contains("cannot provide"),
        "{message}"
    );
    assert!(!exists(target, "locale copy").await);
    assert_no_staging(target).await;

    // The same backup onto the server that has the locale restores it.
    restore(
        server,
        dir.path(),
        "locale",
        &["--target-database", "locale copy"],
    )
    .await
    .expect_code(0, "restore onto the source server");
    assert_eq!(
        properties(server, "locale copy").await,
        properties(server, "locale src").await
    );
}

#[tokio::test]
async fn generated_names_fit_in_63_bytes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "a_database_name_of_exactly_forty_six_bytes_xyz".to_owned(),
        "ü".repeat(23),
        format!("{}表", "n".repeat(60)),
        "d".repeat(63),
    ];
    for (index, database) in names.iter().enumerate() {
        assert!(database.len() >= 46 && database.len() <= 63, "{database}");
        create(
            server,
            database,
            "",
            &format!(
                "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, {index} + 3);"
            ),
        )
        .await;
        let name = format!("long-{index}");
        backup(server, database, dir.path(), &name).await;
        let restored = restore(server, dir.path(), &name, &[]).await;
        restored.expect_code(0, "restore under the default name");
        let target = restored.json()["target"]["database"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(target.len() <= 63, "{target:?} is {} bytes", target.len());
        assert!(target.contains("_restore_"), "{target}");
        assert!(exists(server, &target).await, "{target}");
        let rows = server
            .sql_in(&target, "SELECT count(*) FROM t")
            .await
            .unwrap();
        assert_eq!(rows.trim(), (index + 3).to_string());
        // A drill's scratch name fits too.
        let store = dir.path().join("store").display().to_string();
        let mut drill = strings(&["drill", "--path", &store, "--name", &name]);
        drill.extend(flags(server, "postgres", dir.path()));
        run(&drill).await.expect_code(0, "drill");
    }
    // Two long names alike in their first 40 bytes restore into different databases.
    let twins = [
        format!("{}_one_", "t".repeat(42)),
        format!("{}_two_", "t".repeat(42)),
    ];
    let mut targets = Vec::new();
    for (index, database) in twins.iter().enumerate() {
        create(server, database, "", "").await;
        let name = format!("twin-{index}");
        backup(server, database, dir.path(), &name).await;
        let restored = restore(server, dir.path(), &name, &[]).await;
        restored.expect_code(0, "restore of a twin");
        targets.push(restored.json()["target"]["database"].clone());
    }
    assert_ne!(targets[0], targets[1]);

    // A name given by the user that does not fit is refused before anything happens.
    let too_long = "x".repeat(64);
    let refused = restore(
        server,
        dir.path(),
        "long-0",
        &["--target-database", &too_long],
    )
    .await;
    refused.expect_code(3, "a 64-byte target name");
    assert!(error_message(&refused).contains("63 bytes"), "{refused:?}");
    let multibyte = "ü".repeat(32);
    restore(
        server,
        dir.path(),
        "long-0",
        &["--target-database", &multibyte],
    )
    .await
    .expect_code(3, "32 two-byte characters");
}

#[tokio::test]
async fn tool_errors_carry_no_password_file_warning() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"this is not a pg_dump archive\n".repeat(100)).unwrap();
    run(&strings(&[
        "backup",
        "--path",
        &store,
        "--name",
        "garbage",
        "--no-encryption",
        "--from-file",
        &garbage.display().to_string(),
    ]))
    .await
    .expect_code(0, "backup of a file");
    create(
        server,
        "warn src",
        "",
        "CREATE TABLE t (id int);
         CREATE FUNCTION n() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM t';
         CREATE MATERIALIZED VIEW mv AS SELECT n() AS n;",
    )
    .await;
    backup(server, "warn src", dir.path(), "warn").await;
    let bin_dir = server.bin_dir().display().to_string();
    let port = server.port().to_string();
    let socket = server.socket_dir().display().to_string();
    // Without a password, over the trusted Unix socket: an archive pg_restore rejects, and one
    // it stops in.
    for (backup, real_message) in [
        ("garbage", "does not appear to be a valid archive"),
        ("warn", "relation \"t\" does not exist"),
    ] {
        let outcome = run(&strings(&[
            "restore",
            "--path",
            &store,
            "--name",
            backup,
            "--engine",
            "postgres",
            "--host",
            &socket,
            "--port",
            &port,
            "--user",
            server.superuser(),
            "--bin-dir",
            &bin_dir,
            "--target-database",
            "warn copy",
        ]))
        .await;
        outcome.expect_code(4, "a failing pg_restore");
        assert!(outcome.stderr.contains(real_message), "{}", outcome.stderr);
        assert!(!outcome.stderr.contains("plain file"), "{}", outcome.stderr);
        assert!(!outcome.stderr.contains("WARNING"), "{}", outcome.stderr);
    }
}

/// A failure's missing role, the flags its message names, and those it must not name.
type ExpectedFailure = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

#[tokio::test]
async fn a_missing_role_names_no_owner_and_no_privileges_which_are_independent() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let target = other().await;
    let dir = tempfile::tempdir().unwrap();
    server
        .sql("CREATE ROLE \"app owner\"; CREATE ROLE \"app viewer\"")
        .await
        .unwrap();
    create(
        server,
        "owned src",
        "OWNER \"app owner\"",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);
         ALTER TABLE t OWNER TO \"app owner\";
         GRANT SELECT ON t TO \"app viewer\";",
    )
    .await;
    backup(server, "owned src", dir.path(), "owned").await;

    let cases: [(&[&str], Option<ExpectedFailure>); 4] = [
        (
            &[],
            Some(("app owner", &["--no-owner", "--no-privileges"], &[])),
        ),
        (
            &["--no-privileges"],
            Some(("app owner", &["--no-owner"], &["--no-privileges ("])),
        ),
        (
            &["--no-owner"],
            Some(("app viewer", &["--no-privileges"], &["--no-owner ("])),
        ),
        (&["--no-owner", "--no-privileges"], None),
    ];
    for (index, (flags, failure)) in cases.iter().enumerate() {
        let copy = format!("owned copy {index}");
        let mut extra = vec!["--target-database", copy.as_str()];
        extra.extend(flags.iter().copied());
        let outcome = restore(target, dir.path(), "owned", &extra).await;
        match failure {
            Some((role, named, not_named)) => {
                outcome.expect_code(4, "restore with a missing role");
                let message = error_message(&outcome);
                assert!(
                    message.contains(&format!("role \"{role}\"")),
                    "{flags:?}: {message}"
                );
                for flag in *named {
                    assert!(
                        message.contains(flag),
                        "{flags:?} should name {flag}: {message}"
                    );
                }
                for flag in *not_named {
                    assert!(!message.contains(flag), "{flags:?} names {flag}: {message}");
                }
                assert!(!message.contains("plain file"), "{message}");
                assert!(!exists(target, &copy).await);
            }
            None => {
                outcome.expect_code(0, "restore with both flags");
                let rows = target
                    .sql_in(&copy, "SELECT count(*) FROM t")
                    .await
                    .unwrap();
                assert_eq!(rows.trim(), "2");
            }
        }
    }
    assert_no_staging(target).await;
}

#[tokio::test]
async fn a_dump_pg_restore_cannot_complete_names_the_commands_that_recover_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = source().await;
    let dir = tempfile::tempdir().unwrap();
    // The function's body names `t` unqualified; pg_restore runs REFRESH with an empty
    // search_path, where `t` does not resolve.
    create(
        server,
        "mv src",
        "",
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 5);
         CREATE FUNCTION n() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM t';
         CREATE MATERIALIZED VIEW mv AS SELECT n() AS n;",
    )
    .await;
    backup(server, "mv src", dir.path(), "mv").await;
    let failed = restore(server, dir.path(), "mv", &["--target-database", "mv copy"]).await;
    failed.expect_code(4, "restore of a matview over an unqualified name");
    let message = error_message(&failed);
    for expected in [
        "relation \"t\" does not exist",
        "vertice-backup restore --name mv --to-file mv.pgdump",
        "createdb --template=template0 'mv copy'",
        "pg_restore --dbname='mv copy' mv.pgdump",
    ] {
        assert!(
            message.contains(expected),
            "should say {expected:?}: {message}"
        );
    }
    assert!(!exists(server, "mv copy").await);
    assert_no_staging(server).await;

    // Following the hint restores the data.
    let file = dir.path().join("mv.pgdump");
    let store = dir.path().join("store").display().to_string();
    run(&strings(&[
        "restore",
        "--path",
        &store,
        "--name",
        "mv",
        "--to-file",
        &file.display().to_string(),
    ]))
    .await
    .expect_code(0, "restore --to-file");
    server
        .sql("CREATE DATABASE \"mv copy\" TEMPLATE template0")
        .await
        .unwrap();
    let pg_restore = server
        .client_command("pg_restore")
        .arg("--dbname=mv copy")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&pg_restore.stderr).contains("relation \"t\" does not exist"),
        "{pg_restore:?}"
    );
    let rows = server
        .sql_in("mv copy", "SELECT count(*) FROM t")
        .await
        .unwrap();
    assert_eq!(rows.trim(), "5");
}
