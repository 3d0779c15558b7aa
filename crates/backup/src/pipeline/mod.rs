//! The streaming data path. Writing: [`chunker`] cuts the dump into fixed-size chunks, the
//! [`ChunkCodec`] compresses ([`compress`]), encrypts ([`encrypt`]) and hashes ([`hash`]) each
//! chunk on the blocking thread pool — several at once, results kept in order — and
//! [`upload`] streams them into multipart uploads. Reading ([`reader`]) runs the same steps
//! backwards. Every stage is connected by bounded channels, so memory does not grow with the
//! size of the dump, and the dump tool never waits on compression unless every worker is busy.

pub mod adaptive;
pub mod buffers;
pub mod chunker;
pub mod compress;
pub mod cpu;
pub mod cpu_idle;
pub mod cpu_quota;
pub mod encrypt;
pub mod hash;
pub mod reader;
pub mod upload;

use bytes::Bytes;

use std::sync::Arc;

use crate::error::BackupError;
use crate::format::BackupId;
use crate::manifest::ChunkEntry;
use adaptive::AdaptiveLevel;
use compress::Compression;
use cpu::{Stage, StageCpu};
use encrypt::DataKey;

/// A raw chunk of the dump.
#[derive(Debug)]
pub struct RawChunk {
    /// Position in the dump, from 0.
    pub index: u64,
    /// Whether this is the last chunk.
    pub is_final: bool,
    /// The dump bytes.
    pub data: Bytes,
}

/// A chunk ready to store.
#[derive(Debug)]
pub struct EncodedChunk {
    /// Position in the dump.
    pub index: u64,
    /// Raw size.
    pub raw_size: u64,
    /// Compressed and encrypted bytes.
    pub stored: Bytes,
    /// BLAKE3 of `stored`, hex.
    pub blake3: String,
}

/// What turns raw chunks into stored chunks and back, for one backup.
#[derive(Debug)]
pub struct ChunkCodec {
    backup_id: BackupId,
    compression: Compression,
    key: Option<DataKey>,
    /// Set for an adaptive zstd backup: the level each chunk is compressed with.
    adaptive: Option<Arc<AdaptiveLevel>>,
}

impl ChunkCodec {
    /// A codec for backup `backup_id`; `key` is `None` for unencrypted backups.
    pub fn new(backup_id: BackupId, compression: Compression, key: Option<DataKey>) -> Self {
        ChunkCodec {
            backup_id,
            compression,
            key,
            adaptive: None,
        }
    }

    /// Compresses each chunk with `adaptive`'s current level instead of the fixed one (zstd).
    #[must_use]
    pub fn with_adaptive_level(mut self, adaptive: Arc<AdaptiveLevel>) -> Self {
        self.adaptive = Some(adaptive);
        self
    }

    /// The compression for the next chunk.
    fn chunk_compression(&self) -> Compression {
        match (&self.adaptive, self.compression) {
            (Some(adaptive), Compression::Zstd { .. }) => Compression::Zstd {
                level: adaptive.level(),
            },
            (_, fixed) => fixed,
        }
    }

    /// Compresses, encrypts and hashes one chunk (CPU-bound: run it on a blocking thread),
    /// charging each step's CPU time to its stage in `cpu`.
    pub fn encode(&self, chunk: &RawChunk, cpu: &StageCpu) -> Result<EncodedChunk, BackupError> {
        let raw_size = chunk.data.len() as u64;
        let compression = self.chunk_compression();
        let started = std::time::Instant::now();
        let compressed = cpu.measure(Stage::Compress, || compression.compress(&chunk.data))?;
        if let Some(adaptive) = &self.adaptive {
            adaptive.record_compression(started.elapsed());
        }
        let stored = match &self.key {
            Some(key) => cpu.measure(Stage::Encrypt, || {
                key.seal_chunk(&self.backup_id, chunk.index, chunk.is_final, compressed)
            })?,
            None => compressed,
        };
        let blake3 = cpu.measure(Stage::Hash, || hash::digest(&stored));
        Ok(EncodedChunk {
            index: chunk.index,
            raw_size,
            blake3,
            stored: Bytes::from(stored),
        })
    }

    /// Checks the hash, decrypts, decompresses and checks the size of one stored chunk
    /// (CPU-bound: run it on a blocking thread).
    pub fn decode(
        &self,
        index: u64,
        is_final: bool,
        entry: &ChunkEntry,
        stored: Bytes,
    ) -> Result<Bytes, BackupError> {
        let (raw, _) = self.decode_into(index, is_final, entry, Vec::from(stored), Vec::new())?;
        Ok(Bytes::from(raw))
    }

    /// [`ChunkCodec::decode`] with the caller's buffers: the raw chunk is written into `out`'s
    /// allocation (its contents are dropped), and the stored buffer comes back emptied, so a
    /// reader can recycle both instead of allocating two per chunk.
    pub fn decode_into(
        &self,
        index: u64,
        is_final: bool,
        entry: &ChunkEntry,
        stored: Vec<u8>,
        out: Vec<u8>,
    ) -> Result<(Vec<u8>, Vec<u8>), BackupError> {
        hash::check(
            &blake3::hash(&stored),
            &entry.blake3,
            &format!("chunk {index}"),
        )?;
        let compressed = match &self.key {
            Some(key) => key.open_chunk(&self.backup_id, index, is_final, stored)?,
            None => stored,
        };
        let raw_size = usize::try_from(entry.raw_size)
            .map_err(|_| BackupError::Integrity(format!("chunk {index} is too large")))?;
        self.compression.decompress_into(compressed, raw_size, out)
    }
}
