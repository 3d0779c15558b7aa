//! Streams stored chunks into data objects through multipart uploads, with a bounded number
//! of parts in flight, starting a new data object when one would exceed its size limit.
//! A failed or cancelled backup aborts the open upload and deletes the finished objects.

use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};

use super::EncodedChunk;
use crate::error::BackupError;
use crate::format::{BackupId, FORMAT_VERSION, HEADER_LEN, data_object_name, encode_header};
use crate::manifest::{ChunkEntry, DataObject};
use crate::store::BackupStore;

/// Bounds of the upload: memory is about `part_size × (concurrency + 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// Size of one multipart part (S3 needs at least 5 MiB for all but the last).
    pub part_size: usize,
    /// Parts uploading at once.
    pub concurrency: usize,
    /// A data object is closed before it would grow past this (S3 allows 10,000 parts).
    pub max_object_size: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
            max_object_size: 16 * 1024 * 1024 * 1024,
        }
    }
}

struct OpenObject {
    index: u32,
    upload: WriteMultipart,
    size: u64,
}

/// Writes the data objects of one backup.
pub struct DataObjectWriter {
    store: BackupStore,
    name: String,
    backup_id: BackupId,
    limits: UploadLimits,
    current: Option<OpenObject>,
    finished: Vec<DataObject>,
}

impl DataObjectWriter {
    /// A writer for backup `name`; nothing is uploaded until the first chunk. The objects are
    /// not hashed as a whole (format 2, see [`crate::format`]): their header is checked byte
    /// for byte and every chunk has its own hash.
    pub fn new(store: BackupStore, name: &str, backup_id: BackupId, limits: UploadLimits) -> Self {
        DataObjectWriter {
            store,
            name: name.to_string(),
            backup_id,
            limits,
            current: None,
            finished: Vec::new(),
        }
    }

    fn path(&self, index: u32) -> Result<Path, BackupError> {
        self.store.data_path(&self.name, index)
    }

    async fn open(&mut self, index: u32) -> Result<(), BackupError> {
        let header = encode_header(FORMAT_VERSION, index, &self.backup_id);
        let upload = self
            .store
            .object_store()
            .put_multipart(&self.path(index)?)
            .await?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, self.limits.part_size);
        upload.write(&header);
        self.current = Some(OpenObject {
            index,
            upload,
            size: HEADER_LEN,
        });
        Ok(())
    }

    async fn close_current(&mut self) -> Result<(), BackupError> {
        if let Some(object) = self.current.take() {
            object.upload.finish().await?;
            self.finished.push(DataObject {
                name: data_object_name(object.index),
                size: object.size,
                blake3: None,
            });
        }
        Ok(())
    }

    /// Appends one chunk, waiting while too many parts are in flight.
    pub async fn write_chunk(&mut self, chunk: EncodedChunk) -> Result<ChunkEntry, BackupError> {
        let stored_len = chunk.stored.len() as u64;
        let must_roll = self.current.as_ref().is_some_and(|object| {
            object.size > HEADER_LEN && object.size + stored_len > self.limits.max_object_size
        });
        if must_roll {
            self.close_current().await?;
        }
        if self.current.is_none() {
            let index = u32::try_from(self.finished.len())
                .map_err(|_| BackupError::Internal("too many data objects".into()))?;
            self.open(index).await?;
        }
        let concurrency = self.limits.concurrency;
        let object = self
            .current
            .as_mut()
            .ok_or_else(|| BackupError::Internal("no open data object".into()))?;
        object.upload.wait_for_capacity(concurrency).await?;
        let entry = ChunkEntry {
            object: object.index,
            offset: object.size,
            raw_size: chunk.raw_size,
            stored_size: stored_len,
            blake3: chunk.blake3,
        };
        object.size += stored_len;
        object.upload.put(chunk.stored);
        Ok(entry)
    }

    /// Completes the last upload; returns every data object, in order.
    pub async fn finish(mut self) -> Result<Vec<DataObject>, BackupError> {
        self.close_current().await?;
        Ok(self.finished)
    }

    /// Aborts the open upload (discarding its parts) and deletes the finished objects — best
    /// effort: the store may be the thing that failed. Without a manifest none of it is a
    /// backup anyway.
    pub async fn abort(mut self) {
        if let Some(object) = self.current.take()
            && let Err(error) = object.upload.abort().await
        {
            tracing::warn!(backup = %self.name, %error, "could not abort the multipart upload");
        }
        for index in 0..self.finished.len() {
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            if let Ok(path) = self.path(index)
                && let Err(error) = self.store.object_store().delete(&path).await
            {
                tracing::warn!(backup = %self.name, %error, "could not delete a data object");
            }
        }
    }
}
