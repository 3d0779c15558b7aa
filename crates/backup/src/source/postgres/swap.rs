//! The last step of a PostgreSQL restore: the staging database takes the target's name, with
//! the old target (when overwriting) renamed aside first and dropped last.

use super::*;

/// Renames the restored staging database to the target. An existing target (with
/// `overwrite`) is first renamed aside, and dropped only once the staging database carries the
/// target's name: at every instant one of the two names holds a complete database, and a
/// failed rename puts the old one back. The existence check is repeated: the target may have
/// appeared meanwhile.
pub(super) async fn swap_into_place(
    admin: &Client,
    staging: &str,
    target: &str,
    overwrite: bool,
    password: Option<&Secret>,
) -> Result<(), SourceError> {
    if !database_exists(admin, target, password).await? {
        return rename_database(admin, staging, target, password).await;
    }
    if !overwrite {
        return Err(SourceError::TargetExists {
            target: target.to_owned(),
        });
    }
    let aside = crate::source::identifier::generated_name(
        Engine::Postgres,
        "vertice_old",
        &format!("_{}", unique_suffix()),
    );
    rename_database(admin, target, &aside, password).await?;
    if let Err(error) = rename_database(admin, staging, target, password).await {
        if let Err(back) = rename_database(admin, &aside, target, password).await {
            return Err(SourceError::Other(format!(
                "{error}; the previous database could not be renamed back ({back}): it is \
                 kept as {aside:?}"
            )));
        }
        return Err(error);
    }
    if let Err(error) = admin
        .batch_execute(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote_ident(&aside)
        ))
        .await
    {
        // The restore is in place; the old copy is only a leftover to report.
        tracing::warn!(
            database = %aside,
            error = %scrub(&error_text(&error), password),
            "could not drop the database the restore replaced"
        );
    }
    Ok(())
}

/// `ALTER DATABASE … RENAME`, after ending the sessions connected to `from` (a database in
/// use cannot be renamed). A session that connects in between makes it fail with
/// `object_in_use`; it is tried a few times.
pub(super) async fn rename_database(
    admin: &Client,
    from: &str,
    to: &str,
    password: Option<&Secret>,
) -> Result<(), SourceError> {
    let mut attempt = 0;
    loop {
        admin
            .query(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()",
                &[&from],
            )
            .await
            .map_err(|e| {
                pg_error(
                    "ending the sessions of the database to rename",
                    &e,
                    password,
                )
            })?;
        let renamed = admin
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            ))
            .await;
        match renamed {
            Ok(()) => return Ok(()),
            Err(error)
                if attempt < 5
                    && error.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(error) => {
                return Err(pg_error(
                    &format!("renaming database {from:?} to {to:?}"),
                    &error,
                    password,
                ));
            }
        }
    }
}

/// Best-effort cleanup of a staging database after a failure (the failure is what we report).
pub(super) async fn drop_database(admin: &Client, database: &str) {
    let _ = admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(database)
        ))
        .await;
}

/// A staging database name that no user database has: lowercase, unique per process and
/// moment, and within PostgreSQL's 63 bytes.
pub(super) fn staging_name() -> String {
    crate::source::identifier::generated_name(
        Engine::Postgres,
        "vertice_restore",
        &format!("_{}", unique_suffix()),
    )
}
