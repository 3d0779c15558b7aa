//! PostgreSQL behind [`DatabaseEngine`].

use async_trait::async_trait;

use super::{PostgresRestoreOptions, PostgresSource};
use crate::engine::RestoreSpec;
use crate::error::BackupError;
use crate::isolation::IsolationReport;
use crate::manifest::Manifest;
use crate::source::engine::{
    DatabaseEngine, default_target_database, scratch_database, wrong_target,
};
use crate::source::identifier::check_database_name;
use crate::source::{
    DatabaseProperties, Engine, ObjectCounts, RestoreStream, RestoreTarget, SourceError,
    SourceInfo, StartedDump,
};

impl PostgresSource {
    fn options<'a>(
        &self,
        target: &'a RestoreTarget,
    ) -> Result<&'a PostgresRestoreOptions, SourceError> {
        match target {
            RestoreTarget::Postgres(options) => Ok(options),
            other => Err(wrong_target(Engine::Postgres, other)),
        }
    }
}

#[async_trait]
impl DatabaseEngine for PostgresSource {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    async fn info(&self) -> Result<SourceInfo, SourceError> {
        PostgresSource::info(self).await
    }

    async fn dump(&self) -> Result<StartedDump, SourceError> {
        PostgresSource::dump(self).await
    }

    fn restore_target(
        &self,
        spec: &RestoreSpec,
        manifest: &Manifest,
    ) -> Result<RestoreTarget, BackupError> {
        if let Some(database) = &spec.target_database {
            check_database_name(Engine::Postgres, database).map_err(BackupError::Config)?;
        }
        let properties = manifest.database_properties.as_ref();
        Ok(RestoreTarget::Postgres(PostgresRestoreOptions {
            database: spec
                .target_database
                .clone()
                .unwrap_or_else(|| default_target_database(manifest, Engine::Postgres)),
            overwrite: spec.overwrite,
            no_owner: spec.no_owner,
            no_privileges: spec.no_privileges,
            properties: properties.and_then(DatabaseProperties::postgres).cloned(),
        }))
    }

    async fn restore(&self, target: &RestoreTarget) -> Result<RestoreStream, SourceError> {
        PostgresSource::restore(self, self.options(target)?).await
    }

    async fn count_restored(
        &self,
        target: &RestoreTarget,
        _dumped_databases: &[String],
    ) -> Result<ObjectCounts, SourceError> {
        self.count_rows(Some(&self.options(target)?.database)).await
    }

    async fn isolation_report(
        &self,
        target: &RestoreTarget,
        dumped_databases: &[String],
    ) -> Result<IsolationReport, SourceError> {
        PostgresSource::isolation_report(self, &self.options(target)?.database, dumped_databases)
            .await
    }

    fn scratch_target(
        &self,
        manifest: &Manifest,
        suffix: &str,
    ) -> Result<(RestoreTarget, Option<tempfile::TempDir>), BackupError> {
        let properties = manifest.database_properties.as_ref();
        // The scratch copy must hold the data as dumped (a SQL_ASCII or LATIN1 dump in a UTF8
        // database is not): it takes the dump's properties; roles may not exist here.
        let target = RestoreTarget::Postgres(PostgresRestoreOptions {
            database: scratch_database(Engine::Postgres, suffix),
            overwrite: false,
            no_owner: true,
            no_privileges: true,
            properties: properties.and_then(DatabaseProperties::postgres).cloned(),
        });
        Ok((target, None))
    }

    async fn remove_scratch(&self, target: &RestoreTarget) -> Result<(), BackupError> {
        let database = &self.options(target)?.database;
        // Never through the publisher: that would drop the source's slot.
        if self.database_exists(database).await? {
            self.detach_subscriptions(database).await?;
        }
        self.drop_database(database).await?;
        Ok(())
    }
}
