//! MySQL/MariaDB behind [`DatabaseEngine`].

use async_trait::async_trait;

use super::{MariadbRestoreOptions, MariadbSource};
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

impl MariadbSource {
    fn options<'a>(
        &self,
        target: &'a RestoreTarget,
    ) -> Result<&'a MariadbRestoreOptions, SourceError> {
        match target {
            RestoreTarget::Mariadb(options) => Ok(options),
            other => Err(wrong_target(Engine::Mariadb, other)),
        }
    }
}

#[async_trait]
impl DatabaseEngine for MariadbSource {
    fn engine(&self) -> Engine {
        Engine::Mariadb
    }

    async fn info(&self) -> Result<SourceInfo, SourceError> {
        MariadbSource::info(self).await
    }

    async fn dump(&self) -> Result<StartedDump, SourceError> {
        MariadbSource::dump(self).await
    }

    fn restore_target(
        &self,
        spec: &RestoreSpec,
        manifest: &Manifest,
    ) -> Result<RestoreTarget, BackupError> {
        if let Some(database) = &spec.target_database {
            check_database_name(Engine::Mariadb, database).map_err(BackupError::Config)?;
        }
        let properties = manifest.database_properties.as_ref();
        // One dumped database restores under a new name; several keep their own names.
        let database = match (&spec.target_database, manifest.databases.len()) {
            (Some(database), _) => Some(database.clone()),
            (None, 1) => Some(default_target_database(manifest, Engine::Mariadb)),
            (None, _) => None,
        };
        Ok(RestoreTarget::Mariadb(MariadbRestoreOptions {
            database,
            dumped_databases: manifest.databases.clone(),
            overwrite: spec.overwrite,
            properties: properties.and_then(DatabaseProperties::mariadb).cloned(),
            keep_events_enabled: spec.keep_events_enabled,
        }))
    }

    async fn restore(&self, target: &RestoreTarget) -> Result<RestoreStream, SourceError> {
        MariadbSource::restore(self, self.options(target)?).await
    }

    async fn count_restored(
        &self,
        target: &RestoreTarget,
        dumped_databases: &[String],
    ) -> Result<ObjectCounts, SourceError> {
        MariadbSource::count_restored(self, self.options(target)?, dumped_databases).await
    }

    async fn isolation_report(
        &self,
        target: &RestoreTarget,
        _dumped_databases: &[String],
    ) -> Result<IsolationReport, SourceError> {
        MariadbSource::isolation_report(self, self.options(target)?).await
    }

    fn scratch_target(
        &self,
        manifest: &Manifest,
        suffix: &str,
    ) -> Result<(RestoreTarget, Option<tempfile::TempDir>), BackupError> {
        if manifest.databases.len() > 1 {
            return Err(BackupError::Config(
                "a drill of a MariaDB backup of several databases needs a scratch server: \
                 restore it there with `restore` and compare with `verify`"
                    .into(),
            ));
        }
        let properties = manifest.database_properties.as_ref();
        let target = RestoreTarget::Mariadb(MariadbRestoreOptions {
            database: Some(scratch_database(Engine::Mariadb, suffix)),
            dumped_databases: manifest.databases.clone(),
            overwrite: false,
            properties: properties.and_then(DatabaseProperties::mariadb).cloned(),
            // Drills never run events.
            keep_events_enabled: false,
        });
        Ok((target, None))
    }

    async fn remove_scratch(&self, target: &RestoreTarget) -> Result<(), BackupError> {
        if let Some(database) = &self.options(target)?.database {
            self.drop_database(database).await?;
        }
        Ok(())
    }
}
