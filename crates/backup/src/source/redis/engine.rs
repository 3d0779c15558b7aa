//! Redis behind [`DatabaseEngine`]: a restore writes an RDB into a data directory.

use async_trait::async_trait;

use super::{RedisRestoreOptions, RedisSource, count_keys_in_data_dir, restore_to_data_dir};
use crate::engine::RestoreSpec;
use crate::error::BackupError;
use crate::isolation::IsolationReport;
use crate::manifest::Manifest;
use crate::source::engine::{DatabaseEngine, wrong_target};
use crate::source::{
    Engine, ObjectCounts, RestoreStream, RestoreTarget, SourceError, SourceInfo, StartedDump,
};

/// The Redis `databases` setting a manifest recorded for its source, if any.
fn recorded_databases(manifest: &Manifest) -> Option<u32> {
    crate::drill::redis_databases(manifest)
}

fn options(target: &RestoreTarget) -> Result<&RedisRestoreOptions, SourceError> {
    match target {
        RestoreTarget::Redis(options) => Ok(options),
        other => Err(wrong_target(Engine::Redis, other)),
    }
}

#[async_trait]
impl DatabaseEngine for RedisSource {
    fn engine(&self) -> Engine {
        Engine::Redis
    }

    async fn info(&self) -> Result<SourceInfo, SourceError> {
        RedisSource::info(self).await
    }

    async fn dump(&self) -> Result<StartedDump, SourceError> {
        RedisSource::dump(self).await
    }

    fn restore_target(
        &self,
        spec: &RestoreSpec,
        manifest: &Manifest,
    ) -> Result<RestoreTarget, BackupError> {
        Ok(RestoreTarget::Redis(RedisRestoreOptions {
            data_dir: spec.target_data_dir.clone().ok_or_else(|| {
                BackupError::Config("a Redis restore needs --target-data-dir".into())
            })?,
            dbfilename: "dump.rdb".into(),
            overwrite: spec.overwrite,
            bin_dir: self.config().bin_dir.clone(),
            databases: recorded_databases(manifest),
        }))
    }

    async fn restore(&self, target: &RestoreTarget) -> Result<RestoreStream, SourceError> {
        restore_to_data_dir(options(target)?).await
    }

    async fn count_restored(
        &self,
        target: &RestoreTarget,
        _dumped_databases: &[String],
    ) -> Result<ObjectCounts, SourceError> {
        count_keys_in_data_dir(options(target)?).await
    }

    async fn isolation_report(
        &self,
        _target: &RestoreTarget,
        _dumped_databases: &[String],
    ) -> Result<IsolationReport, SourceError> {
        // A snapshot acts only on its own server: nothing to reach outside.
        Ok(IsolationReport::default())
    }

    fn scratch_target(
        &self,
        manifest: &Manifest,
        _suffix: &str,
    ) -> Result<(RestoreTarget, Option<tempfile::TempDir>), BackupError> {
        // Loaded by the `redis-server` of the source's binDir (PATH when unset).
        let dir = tempfile::Builder::new()
            .prefix("vertice-drill-")
            .tempdir()
            .map_err(BackupError::Io)?;
        let target = RestoreTarget::Redis(RedisRestoreOptions {
            data_dir: dir.path().to_path_buf(),
            dbfilename: "dump.rdb".into(),
            overwrite: false,
            bin_dir: self.config().bin_dir.clone(),
            databases: recorded_databases(manifest),
        });
        Ok((target, Some(dir)))
    }

    async fn remove_scratch(&self, _target: &RestoreTarget) -> Result<(), BackupError> {
        // The directory goes with its TempDir.
        Ok(())
    }
}
