//! A restored MariaDB database is the database that was backed up — through the real
//! `vertice-backup` binary against a real MariaDB server: its default character set, collation
//! and comment survive (what tables created later inherit), for single- and multi-database
//! backups, into new databases and over existing ones (`--overwrite`); generated database names
//! fit in 64 characters, for long and multi-byte names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::Path;

use cli_process::{Outcome, run};
use tokio::sync::OnceCell;
use vertice_testkit::services::MariaDb;

static SERVER: OnceCell<MariaDb> = OnceCell::const_new();

async fn server() -> &'static MariaDb {
    SERVER
        .get_or_init(|| async {
            MariaDb::start().await.unwrap_or_else(|error| {
                panic!("MariaDB is needed (Debian: apt-get install mariadb-server): {error:#}")
            })
        })
        .await
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// `--engine mariadb …` naming `databases`, password from a file in `dir`.
fn flags(server: &MariaDb, databases: &[&str], dir: &Path) -> Vec<String> {
    let password_file = dir.join("pw");
    std::fs::write(&password_file, format!("{}\n", server.password())).unwrap();
    let mut flags = strings(&[
        "--engine",
        "mariadb",
        "--host",
        server.host(),
        "--port",
        &server.port().to_string(),
        "--user",
        server.user(),
        "--password-file",
        &password_file.display().to_string(),
    ]);
    for database in databases {
        flags.extend(strings(&["--database", database]));
    }
    flags
}

async fn backup(server: &MariaDb, databases: &[&str], dir: &Path, name: &str) {
    let store = dir.join("store").display().to_string();
    let mut args = strings(&[
        "backup",
        "--path",
        &store,
        "--name",
        name,
        "--no-encryption",
    ]);
    args.extend(flags(server, databases, dir));
    run(&args).await.expect_code(0, "backup");
}

async fn restore(server: &MariaDb, dir: &Path, name: &str, extra: &[&str]) -> Outcome {
    let store = dir.join("store").display().to_string();
    let mut args = strings(&[
        "restore", "--path", &store, "--name", name, "--output", "json",
    ]);
    args.extend(flags(server, &[], dir));
    args.extend(strings(extra));
    run(&args).await
}

/// A string as a hex literal (no escaping questions).
fn hex(value: &str) -> String {
    format!(
        "X'{}'",
        value
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    )
}

fn ident(value: &str) -> String {
    format!("`{}`", value.replace('`', "``"))
}

/// Character set, collation and comment of `database`, straight from SCHEMATA.
async fn properties(server: &MariaDb, database: &str) -> String {
    let row = server
        .sql(&format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, HEX(SCHEMA_COMMENT) \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = CONVERT({} USING utf8mb4)",
            hex(database)
        ))
        .await
        .unwrap();
    assert!(
        !row.trim().is_empty(),
        "database {database:?} does not exist"
    );
    row.trim().to_owned()
}

/// The collation a table created now in `database` gets.
async fn new_table_collation(server: &MariaDb, database: &str) -> String {
    server
        .sql_in(
            database,
            "CREATE TABLE later (s varchar(5)); \
             SELECT TABLE_COLLATION FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'later'; DROP TABLE later;",
        )
        .await
        .unwrap()
        .trim()
        .to_owned()
}

const CASES: [(&str, &str); 3] = [
    (
        "latin src",
        "CHARACTER SET latin1 COLLATE latin1_german1_ci COMMENT 'it''s the \\\\ shop'",
    ),
    (
        "utf src 表",
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci COMMENT 'ünïcode'",
    ),
    ("ascii src", "CHARACTER SET ascii COLLATE ascii_bin"),
];

#[tokio::test]
async fn character_sets_collations_and_comments_survive() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for (index, (database, options)) in CASES.iter().enumerate() {
        server
            .sql(&format!("CREATE DATABASE {} {options}", ident(database)))
            .await
            .unwrap();
        server
            .sql_in(
                database,
                "CREATE TABLE t (s varchar(20)); INSERT INTO t VALUES ('Straße'), ('a');",
            )
            .await
            .unwrap_or_default();
        let original = properties(server, database).await;
        let name = format!("one-{index}");
        backup(server, &[database], dir.path(), &name).await;
        let copy = format!("{database} copy");
        restore(server, dir.path(), &name, &["--target-database", &copy])
            .await
            .expect_code(0, "restore under a new name");
        assert_eq!(properties(server, &copy).await, original, "{database}");
        assert_eq!(
            new_table_collation(server, &copy).await,
            new_table_collation(server, database).await
        );
        // Over an existing target with other properties: the commit gives it the source's
        // (a comment the source lacks is cleared).
        make_different(server, &copy).await;
        assert_ne!(properties(server, &copy).await, original, "{database}");
        restore(
            server,
            dir.path(),
            &name,
            &["--target-database", &copy, "--overwrite"],
        )
        .await
        .expect_code(0, "restore --overwrite under a new name");
        assert_eq!(properties(server, &copy).await, original, "{database}");
        expected.push(original);
    }
    assert!(
        expected[0].starts_with("latin1\tlatin1_german1_ci\t"),
        "{expected:?}"
    );

    // A dump of several databases restores into their own names, properties included.
    let all: Vec<&str> = CASES.iter().map(|(database, _)| *database).collect();
    backup(server, &all, dir.path(), "several").await;
    for database in &all {
        server
            .sql(&format!("DROP DATABASE {}", ident(database)))
            .await
            .unwrap();
    }
    restore(server, dir.path(), "several", &[])
        .await
        .expect_code(0, "restore of several databases");
    for (database, original) in all.iter().zip(&expected) {
        assert_eq!(&properties(server, database).await, original, "{database}");
    }

    // Again over the existing databases, after their properties changed.
    for database in &all {
        make_different(server, database).await;
    }
    restore(server, dir.path(), "several", &["--overwrite"])
        .await
        .expect_code(0, "restore --overwrite of several databases");
    for (database, original) in all.iter().zip(&expected) {
        assert_eq!(&properties(server, database).await, original, "{database}");
    }
}

/// Gives `database` a character set, collation and comment none of the cases has.
async fn make_different(server: &MariaDb, database: &str) {
    server
        .sql(&format!(
            "ALTER DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin COMMENT 'stale'",
            ident(database)
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn generated_names_fit_in_64_characters() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "表".repeat(45),
        format!("{}_long", "m".repeat(55)),
        "ü".repeat(50),
    ];
    for (index, database) in names.iter().enumerate() {
        server
            .sql(&format!("CREATE DATABASE {}", ident(database)))
            .await
            .unwrap();
        server
            .sql_in(
                database,
                &format!(
                    "CREATE TABLE t (id int); INSERT INTO t VALUES {};",
                    "(1),".repeat(index) + "(1)"
                ),
            )
            .await
            .unwrap();
        let name = format!("long-{index}");
        backup(server, &[database], dir.path(), &name).await;
        let restored = restore(server, dir.path(), &name, &[]).await;
        restored.expect_code(0, "restore under the default name");
        let target = restored.json()["target"]["database"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(target.chars().count() <= 64, "{target:?}");
        assert!(target.contains("_restore_"), "{target}");
        let rows = server
            .sql_in(&target, "SELECT COUNT(*) FROM t")
            .await
            .unwrap();
        assert_eq!(rows.trim(), (index + 1).to_string(), "{target}");
        let store = dir.path().join("store").display().to_string();
        let mut drill = strings(&["drill", "--path", &store, "--name", &name]);
        drill.extend(flags(server, &[], dir.path()));
        run(&drill).await.expect_code(0, "drill");
    }
    let too_long = "x".repeat(65);
    restore(
        server,
        dir.path(),
        "long-0",
        &["--target-database", &too_long],
    )
    .await
    .expect_code(3, "a 65-character target name");
}

/// A backup from a server with a collation this one lacks (MySQL 8's default
/// `utf8mb4_0900_ai_ci`, unknown to MariaDB 10.11), simulated by recording it in an
/// unencrypted backup's manifest:
/// the restore refuses naming the collation, and leaves no database behind.
#[tokio::test]
async fn a_server_without_the_collation_refuses_naming_it() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    server
        .sql("CREATE DATABASE `newer src` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        .await
        .unwrap();
    backup(server, &["newer src"], dir.path(), "newer").await;
    let manifest = dir.path().join("store/newer/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("\"utf8mb4_unicode_ci\""), "{text}");
    std::fs::write(
        &manifest,
        text.replace("\"utf8mb4_unicode_ci\"", "\"utf8mb4_0900_ai_ci\""),
    )
    .unwrap();
    let refused = restore(
        server,
        dir.path(),
        "newer",
        &["--target-database", "newer copy"],
    )
    .await;
    refused.expect_code(4, "restore of a collation the server lacks");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("collation \"utf8mb4_0900_ai_ci\"") && message.contains("cannot provide"),
        "{message}"
    );
    let left = server
        .sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'newer copy'")
        .await
        .unwrap();
    assert_eq!(left.trim(), "0");
}
