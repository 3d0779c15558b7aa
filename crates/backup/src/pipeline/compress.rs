//! Per-chunk compression: each chunk becomes one complete zstd frame, gzip member, or stays raw,
//! so chunks compress (and decompress) independently, in parallel, with bounded memory.

use std::cell::RefCell;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::encrypt::TAG_LEN;
use crate::error::BackupError;

thread_local! {
    /// One zstd compression context per thread and level, reused chunk after chunk: a fresh
    /// context allocates and clears its tables on every chunk.
    static ZSTD_COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    /// One zstd decompression context per thread, reused likewise.
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `raw` into one zstd frame with this thread's context for `level`. The output has
/// room for a GCM tag, so sealing it in place never reallocates.
fn zstd_compress(raw: &[u8], level: i32) -> Result<Vec<u8>, BackupError> {
    let failed =
        |error: std::io::Error| BackupError::Internal(format!("zstd compression: {error}"));
    ZSTD_COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some((current, compressor)) => {
                // An adaptive backup changes level between chunks: keep the context.
                if *current != level {
                    compressor.set_compression_level(level).map_err(failed)?;
                    *current = level;
                }
                compressor
            }
            slot => {
                &mut slot
                    .insert((level, zstd::bulk::Compressor::new(level).map_err(failed)?))
                    .1
            }
        };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()) + TAG_LEN);
        compressor
            .compress_to_buffer(raw, &mut out)
            .map_err(failed)?;
        Ok(out)
    })
}

/// Decompresses one zstd frame into `out` (emptied first, grown to `raw_len` if smaller) with
/// this thread's context. A frame larger than `out`'s capacity is an integrity error; one of
/// another size than `raw_len` is caught by the caller.
fn zstd_decompress(stored: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), BackupError> {
    ZSTD_DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor =
            match &mut *cell {
                Some(decompressor) => decompressor,
                slot => slot.insert(zstd::bulk::Decompressor::new().map_err(|error| {
                    BackupError::Internal(format!("zstd decompressor: {error}"))
                })?),
            };
        out.clear();
        out.reserve_exact(raw_len);
        decompressor
            .decompress_to_buffer(stored, out)
            .map_err(|error| {
                BackupError::Integrity(format!("chunk does not decompress: {error}"))
            })?;
        Ok(())
    })
}

/// A compression algorithm and its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// Zstandard; level 1–19, or a fast level −7…−1 (zstd's `--fast=N`: less compression for
    /// less CPU); default 1, see [`DEFAULT_ZSTD_LEVEL`].
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// gzip (deflate); level 1–9. Several times slower than zstd: for compatibility only.
    Gzip {
        /// Compression level.
        level: u32,
    },
}

/// The default zstd level. Measured with `cargo xtask bench backup` on two cores: on a 1 GB
/// dump, level 3 stored 0.4% less than level 1 but took 2.5× the CPU, and that CPU is taken
/// from pg_dump and the database server, so the backup ran at 0.66–0.76× pg_dump's speed
/// instead of keeping up with it. On a very compressible 400 MB dump the two levels stored the
/// same size. Users who prefer smaller backups to faster ones set `compressionLevel`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The fastest zstd level accepted (zstd's `--fast=7`): the range the tests cover.
pub const ZSTD_FASTEST_LEVEL: i32 = -7;

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl Compression {
    /// Builds a compression from the CLI/spec fields (`compression`, `compressionLevel`).
    pub fn from_spec(algorithm: &str, level: Option<i32>) -> Result<Self, BackupError> {
        match algorithm {
            "none" => Ok(Compression::None),
            "zstd" => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                if !(ZSTD_FASTEST_LEVEL..=19).contains(&level) || level == 0 {
                    return Err(BackupError::Config(format!(
                        "zstd compression level must be 1–19, or a fast level from \
                         {ZSTD_FASTEST_LEVEL} to -1, not {level}"
                    )));
                }
                Ok(Compression::Zstd { level })
            }
            "gzip" => {
                let level = level.unwrap_or(6);
                let level = u32::try_from(level)
                    .ok()
                    .filter(|level| (1..=9).contains(level))
                    .ok_or_else(|| {
                        BackupError::Config(format!(
                            "gzip compression level must be 1–9, not {level}"
                        ))
                    })?;
                Ok(Compression::Gzip { level })
            }
            other => Err(BackupError::Config(format!(
                "unknown compression {other:?} (expected zstd, gzip or none)"
            ))),
        }
    }

    /// The algorithm's name as in the spec.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd { .. } => "zstd",
            Compression::Gzip { .. } => "gzip",
        }
    }

    /// Compresses one chunk. The output has spare capacity for the GCM tag that encryption
    /// appends in place.
    pub fn compress(&self, raw: &[u8]) -> Result<Vec<u8>, BackupError> {
        match *self {
            Compression::None => {
                let mut out = Vec::with_capacity(raw.len() + TAG_LEN);
                out.extend_from_slice(raw);
                Ok(out)
            }
            Compression::Zstd { level } => zstd_compress(raw, level),
            Compression::Gzip { level } => {
                let mut encoder =
                    flate2::read::GzEncoder::new(raw, flate2::Compression::new(level));
                let mut out = Vec::with_capacity(raw.len() / 2 + 64 + TAG_LEN);
                encoder.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// Decompresses one chunk whose raw size the manifest says is `raw_len`; a chunk that
    /// decompresses to any other size is an integrity error (and never allocates more).
    pub fn decompress(&self, stored: Vec<u8>, raw_len: usize) -> Result<Vec<u8>, BackupError> {
        self.decompress_into(stored, raw_len, Vec::new())
            .map(|(raw, _)| raw)
    }

    /// [`Compression::decompress`] into `out`, whose allocation is reused (its contents are
    /// dropped). Returns the raw chunk and the other buffer, emptied, so that a reader can
    /// recycle both instead of allocating two per chunk.
    pub fn decompress_into(
        &self,
        stored: Vec<u8>,
        raw_len: usize,
        mut out: Vec<u8>,
    ) -> Result<(Vec<u8>, Vec<u8>), BackupError> {
        let (raw, mut spare) = match *self {
            Compression::None => (stored, out),
            Compression::Zstd { .. } => {
                zstd_decompress(&stored, raw_len, &mut out)?;
                (out, stored)
            }
            Compression::Gzip { .. } => {
                out.clear();
                out.reserve_exact(raw_len);
                let limit = u64::try_from(raw_len).unwrap_or(u64::MAX).saturating_add(1);
                flate2::read::GzDecoder::new(stored.as_slice())
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(|error| {
                        BackupError::Integrity(format!("chunk does not decompress: {error}"))
                    })?;
                (out, stored)
            }
        };
        if raw.len() != raw_len {
            return Err(BackupError::Integrity(format!(
                "chunk decompressed to {} bytes, the manifest says {raw_len}",
                raw.len()
            )));
        }
        spare.clear();
        Ok((raw, spare))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_levels_round_trip_and_out_of_range_levels_are_refused() {
        let data = sample();
        for level in [-7, -3, -1, 1, 19] {
            let compression = Compression::from_spec("zstd", Some(level))
                .unwrap_or_else(|e| panic!("level {level}: {e}"));
            let stored = compression
                .compress(&data)
                .unwrap_or_else(|e| panic!("{e}"));
            let raw = compression
                .decompress(stored, data.len())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(raw, data, "level {level}");
        }
        for level in [0, -8, 20] {
            assert!(
                Compression::from_spec("zstd", Some(level)).is_err(),
                "{level}"
            );
        }
    }

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_algorithm_round_trips() {
        let raw = sample();
        for compression in [
            Compression::None,
            Compression::Zstd { level: 1 },
            Compression::Zstd { level: 3 },
            Compression::Gzip { level: 1 },
            Compression::Gzip { level: 6 },
        ] {
            let stored = compression.compress(&raw).unwrap();
            if compression != Compression::None {
                assert!(
                    stored.len() < raw.len() / 2,
                    "{compression:?} did not compress"
                );
            }
            assert_eq!(compression.decompress(stored, raw.len()).unwrap(), raw);
        }
    }

    #[test]
    fn wrong_raw_size_is_an_integrity_error() {
        let raw = sample();
        for compression in [
            Compression::None,
            Compression::Zstd { level: 3 },
            Compression::Gzip { level: 6 },
        ] {
            let stored = compression.compress(&raw).unwrap();
            let error = compression.decompress(stored, raw.len() - 1).unwrap_err();
            assert!(
                matches!(error, BackupError::Integrity(_)),
                "{compression:?}: {error}"
            );
        }
    }

    #[test]
    fn garbage_is_an_integrity_error() {
        for compression in [
            Compression::Zstd { level: 3 },
            Compression::Gzip { level: 6 },
        ] {
            let error = compression.decompress(vec![1, 2, 3, 4, 5], 10).unwrap_err();
            assert!(matches!(error, BackupError::Integrity(_)));
        }
    }

    #[test]
    fn spec_levels_are_bounded() {
        assert_eq!(
            Compression::from_spec("zstd", None).unwrap(),
            Compression::default()
        );
        assert_eq!(
            Compression::from_spec("gzip", Some(9)).unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert!(Compression::from_spec("zstd", Some(0)).is_err());
        assert!(Compression::from_spec("gzip", Some(10)).is_err());
        assert!(Compression::from_spec("lz4", None).is_err());
    }
}
