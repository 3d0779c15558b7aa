//! Chunk buffers that went through the pipeline, kept for the next chunks.
//!
//! Every chunk needs buffers of megabytes (raw, stored). Allocated afresh on whichever thread
//! handles the chunk, they are spread over the allocator's per-thread arenas, which keep freed
//! memory: a restore's peak RSS grew far past what was in flight, and every fresh buffer is
//! paid again in page faults. Recycled, the buffers in use are bounded by the pipeline's depth
//! and no more are allocated.

use std::sync::{Arc, Mutex};

/// A bounded free list of byte buffers.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Most buffers kept idle; more are freed.
    keep: usize,
}

impl BufferPool {
    /// A pool keeping at most `keep` idle buffers.
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::with_capacity(keep)),
            keep,
        })
    }

    /// An empty buffer, with the capacity of a recycled one when there is one.
    pub fn get(&self) -> Vec<u8> {
        self.free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default()
    }

    /// Gives a buffer back (its contents are dropped).
    pub fn put(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        if buffer.capacity() == 0 {
            return;
        }
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.keep
        {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_capacity_and_the_pool_is_bounded() {
        let pool = BufferPool::new(2);
        assert_eq!(pool.get().capacity(), 0);
        for _ in 0..3 {
            let mut buffer = Vec::with_capacity(1000);
            buffer.extend_from_slice(b"data");
            pool.put(buffer);
        }
        let first = pool.get();
        let second = pool.get();
        assert!(first.is_empty() && first.capacity() >= 1000);
        assert!(second.is_empty() && second.capacity() >= 1000);
        // The third buffer was beyond `keep`: freed, not kept.
        assert_eq!(pool.get().capacity(), 0);
    }
}
