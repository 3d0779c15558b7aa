//! A reader over `pg_dump`'s output that counts the archive's rows on the way
//! ([`ArchiveCounter`]) and sends the counts when the stream ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use super::archive_counts::{ArchiveCounter, ArchiveError};
use crate::source::TableRows;

/// What the reader sends at the end of the stream: the counts, or why the archive could not be
/// counted. Nothing is sent when the reader is dropped before the end (the dump did not
/// complete, so there is nothing to count).
pub type ArchiveCounts = Result<TableRows, ArchiveError>;

/// Passes `inner`'s bytes through unchanged, feeding each to an [`ArchiveCounter`].
pub struct CountingReader<R> {
    inner: R,
    counter: Option<(ArchiveCounter, oneshot::Sender<ArchiveCounts>)>,
}

impl<R> CountingReader<R> {
    /// Wraps `inner`; the counts arrive on the returned receiver at end of stream.
    pub fn new(inner: R) -> (Self, oneshot::Receiver<ArchiveCounts>) {
        let (sender, receiver) = oneshot::channel();
        let reader = CountingReader {
            inner,
            counter: Some((ArchiveCounter::new(), sender)),
        };
        (reader, receiver)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let asked = buf.remaining() > 0;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                if let Some((counter, _)) = &mut this.counter {
                    counter.feed(read);
                }
            } else if asked && let Some((counter, sender)) = this.counter.take() {
                // End of stream: nothing was read though there was room.
                let _ = sender.send(counter.finish());
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_pass_through_and_the_result_comes_at_the_end_only() {
        let data = b"not an archive".to_vec();
        let (mut reader, mut counts) = CountingReader::new(&data[..]);
        let mut first = [0u8; 4];
        reader.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"not ");
        assert!(counts.try_recv().is_err(), "no result before the end");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"an archive");
        let result = counts.await.unwrap();
        assert!(matches!(result, Err(ArchiveError::Unsupported(_))));
    }

    #[tokio::test]
    async fn a_reader_dropped_before_the_end_sends_nothing() {
        let data = b"PGDMP".to_vec();
        let (mut reader, counts) = CountingReader::new(&data[..]);
        let mut first = [0u8; 2];
        reader.read_exact(&mut first).await.unwrap();
        drop(reader);
        assert!(counts.await.is_err());
    }
}
