//! Cuts a dump stream into fixed-size chunks, one chunk of look-ahead so the last chunk is
//! known to be the last (its final flag is authenticated). Also hashes the raw dump.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::RawChunk;
use super::adaptive::AdaptiveLevel;
use super::buffers::BufferPool;
use super::cpu::{Stage, StageCpu};
use super::cpu_idle::IdleSampler;
use crate::error::BackupError;
use crate::progress::Progress;

/// What the chunker saw of the whole dump.
#[derive(Debug)]
pub struct ChunkerOutcome {
    /// Bytes in the dump.
    pub raw_size: u64,
    /// BLAKE3 of the dump, hex.
    pub raw_blake3: String,
}

/// Reads until `chunk_size` bytes are in or the stream ends, into a buffer from `pool`.
async fn read_chunk<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    chunk_size: usize,
    pool: &BufferPool,
) -> Result<Bytes, BackupError> {
    let mut buffer = pool.get();
    buffer.reserve_exact(chunk_size);
    while buffer.len() < chunk_size {
        let room = chunk_size - buffer.len();
        if reader.read_buf(&mut (&mut buffer).limit(room)).await? == 0 {
            break;
        }
    }
    Ok(Bytes::from(buffer))
}

/// Reads `reader` to the end and sends its chunks, in order, into `chunks`. An empty dump is
/// one empty final chunk. Chunk buffers come from `pool` (the encoder gives them back). The raw
/// hash's CPU time is charged to [`Stage::Hash`] out of
/// [`Stage::Read`], the stage the caller meters this future's polls with. With `adaptive`, each
/// chunk's read and hand-over times move the compression level (see [`AdaptiveLevel`]).
pub async fn chunk_stream<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    chunk_size: usize,
    chunks: mpsc::Sender<RawChunk>,
    progress: Arc<Progress>,
    cpu: Arc<StageCpu>,
    pool: Arc<BufferPool>,
    adaptive: Option<Arc<AdaptiveLevel>>,
) -> Result<ChunkerOutcome, BackupError> {
    let mut hasher = blake3::Hasher::new();
    let mut raw_size = 0u64;
    let mut index = 0u64;
    let mut idle = IdleSampler::default();
    let mut read_started = Instant::now();
    let mut pending = read_chunk(reader, chunk_size, &pool).await?;
    loop {
        let mut read_time = read_started.elapsed();
        let next = if pending.len() < chunk_size {
            Bytes::new()
        } else {
            // The look-ahead read is part of the time this chunk took to arrive.
            let look_ahead = Instant::now();
            let next = read_chunk(reader, chunk_size, &pool).await?;
            read_time += look_ahead.elapsed();
            next
        };
        let is_final = next.is_empty();
        cpu.measure_nested(Stage::Read, Stage::Hash, || hasher.update(&pending));
        raw_size += pending.len() as u64;
        progress.add(pending.len() as u64);
        let chunk = RawChunk {
            index,
            is_final,
            data: pending,
        };
        let handing_over = Instant::now();
        if chunks.send(chunk).await.is_err() {
            // The pipeline stopped; its own error is the one reported.
            return Err(BackupError::Cancelled);
        }
        if let Some(adaptive) = &adaptive {
            adaptive.observe(read_time, handing_over.elapsed(), idle.share());
        }
        read_started = Instant::now();
        if is_final {
            break;
        }
        pending = next;
        index += 1;
    }
    Ok(ChunkerOutcome {
        raw_size,
        raw_blake3: hasher.finalize().to_hex().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn chunks_of(data: Vec<u8>, chunk_size: usize) -> (Vec<RawChunk>, ChunkerOutcome) {
        let (tx, mut rx) = mpsc::channel(1000);
        let mut reader = data.as_slice();
        let outcome = chunk_stream(
            &mut reader,
            chunk_size,
            tx,
            Progress::new(),
            StageCpu::new(),
            BufferPool::new(4),
            None,
        )
        .await
        .unwrap();
        let mut chunks = Vec::new();
        while let Some(chunk) = rx.recv().await {
            chunks.push(chunk);
        }
        (chunks, outcome)
    }

    #[tokio::test]
    async fn exact_multiple_short_tail_and_empty() {
        let (chunks, outcome) = chunks_of(vec![1u8; 30], 10).await;
        assert_eq!(chunks.len(), 3);
        assert_eq!(outcome.raw_size, 30);
        assert!(chunks.iter().all(|chunk| chunk.data.len() == 10));
        assert_eq!(
            chunks
                .iter()
                .map(|chunk| chunk.is_final)
                .collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            outcome.raw_blake3,
            blake3::hash(&[1u8; 30]).to_hex().to_string()
        );

        let (chunks, _) = chunks_of(vec![1u8; 25], 10).await;
        assert_eq!(
            chunks.iter().map(|c| c.data.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        assert!(chunks[2].is_final && !chunks[1].is_final);
        assert_eq!(chunks[2].index, 2);

        let (chunks, outcome) = chunks_of(Vec::new(), 10).await;
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].is_final && chunks[0].data.is_empty());
        assert_eq!(outcome.raw_size, 0);
    }
}
