//! Claiming a backup name for one run, before any data object is written.
//!
//! Two runs with the same name would write the same object paths (`data-000000.vbk`, …), so
//! the second would overwrite the first's data under the first's manifest. A run therefore
//! first writes `NAME/reservation.json` create-only — `PutMode::Create`, which each store
//! turns into an atomic conditional write:
//! - local filesystem: the object is staged and hard-linked into place, which fails if the
//!   name exists (object_store `LocalFileSystem`);
//! - S3: `PUT` with `If-None-Match: *` (object_store's default `S3ConditionalPut::ETagMatch`),
//!   which AWS S3 honours atomically since August 2024 (MinIO and R2 too). The test server
//!   s3s-fs 0.14.1 honours it as well, though as check-then-write: it refuses a name that
//!   exists, but not one created in the same instant;
//! - Azure Blob: `PUT` with `If-None-Match: *`;
//! - GCS: the JSON API upload with `ifGenerationMatch=0` (see `store::gcs`).
//!
//! Exactly one run wins; the others fail with [`BackupError::NameReserved`] (exit code 8)
//! having written nothing. The reservation stays with the backup (it is one of its own
//! objects) and is deleted last with it, so the name never looks free while any object of the
//! backup remains. The manifest is written create-only too, a second line of defence.

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use super::BackupStore;
use crate::error::BackupError;
use crate::format::RESERVATION_NAME;

/// What a reservation records: which run holds the name, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// The backup name.
    pub name: String,
    /// The run's backup id (hex), the one its manifest will carry.
    pub backup_id: String,
    /// When the run reserved the name.
    pub reserved_at: DateTime<Utc>,
    /// The writing process's id, for a person looking at a stuck name.
    pub pid: u32,
}

impl BackupStore {
    /// Reserves `reservation.name` for this run, create-only. Errors: `NameReserved` when
    /// another run holds it (or a backup of that name exists), `Store` when the store fails.
    pub async fn reserve_name(&self, reservation: &Reservation) -> Result<(), BackupError> {
        let path = self.backup_dir(&reservation.name)?.join(RESERVATION_NAME);
        let bytes = serde_json::to_vec_pretty(reservation)
            .map_err(|error| BackupError::Internal(format!("cannot serialize: {error}")))?;
        match self
            .inner
            .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into())
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(BackupError::NameReserved {
                name: reservation.name.clone(),
                since: self.reserved_since(&reservation.name).await,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// `at <time>` of the reservation that holds `name`, for the message; empty when it
    /// cannot be read.
    async fn reserved_since(&self, name: &str) -> String {
        let Ok(path) = self.backup_dir(name).map(|dir| dir.join(RESERVATION_NAME)) else {
            return String::new();
        };
        let Ok(result) = self.inner.get(&path).await else {
            return String::new();
        };
        let Ok(bytes) = result.bytes().await else {
            return String::new();
        };
        serde_json::from_slice::<Reservation>(&bytes)
            .map(|held| {
                format!(
                    "at {} (pid {})",
                    held.reserved_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    held.pid
                )
            })
            .unwrap_or_default()
    }
}
