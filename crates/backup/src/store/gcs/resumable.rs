//! A multipart upload as one resumable upload session of the JSON API.
//!
//! A session takes its bytes in order, each request but the last a multiple of 256 KiB,
//! while object_store's callers hand out parts that upload concurrently, of any size. So
//! each part waits for the one before it (a chain of one-shot channels passes the session's
//! progress along), sends the largest 256 KiB-aligned run of what it has, and leaves the
//! rest (less than 256 KiB) to the next part; `complete` sends the last bytes with the
//! object's size, which finishes it. Memory stays at the parts the caller keeps in flight,
//! plus that short carry.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
use tokio::sync::oneshot;

use super::error::ApiError;
use super::json_api::{ChunkReply, JsonApi, MAX_ATTEMPTS, QUANTUM, SessionUri, backoff};

/// Where the session stands between two parts.
struct Progress {
    /// Bytes the server holds.
    sent: u64,
    /// Bytes not sent yet because they do not fill a quantum.
    carry: Bytes,
}

/// One object being written through a resumable session.
pub(crate) struct ResumableUpload {
    api: Arc<JsonApi>,
    path: Path,
    session: SessionUri,
    /// Yields the progress once every part handed out so far is uploaded; closed when one
    /// of them failed (or was dropped unfinished).
    last: oneshot::Receiver<Progress>,
}

impl fmt::Debug for ResumableUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableUpload")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ResumableUpload {
    /// An upload through an open `session`, with nothing sent yet.
    pub(crate) fn new(api: Arc<JsonApi>, path: Path, session: SessionUri) -> Self {
        let (sender, last) = oneshot::channel();
        // The receiver is right here, so this cannot fail.
        let _ = sender.send(Progress {
            sent: 0,
            carry: Bytes::new(),
        });
        ResumableUpload {
            api,
            path,
            session,
            last,
        }
    }

    /// Takes the progress chain's end, leaving a closed one behind (so a later `complete`
    /// or part fails instead of waiting forever).
    fn take_last(&mut self) -> oneshot::Receiver<Progress> {
        let (_, closed) = oneshot::channel();
        std::mem::replace(&mut self.last, closed)
    }
}

#[async_trait::async_trait]
impl MultipartUpload for ResumableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (sender, receiver) = oneshot::channel();
        let previous = std::mem::replace(&mut self.last, receiver);
        let api = Arc::clone(&self.api);
        let path = self.path.clone();
        let session = self.session.clone();
        Box::pin(async move {
            let progress = previous.await.map_err(|_| earlier_part_failed(&path))?;
            let progress = send_part(&api, &session, &path, progress, data)
                .await
                .map_err(|error| error.into_store_error(&path, false))?;
            // Nobody waits when the upload was abandoned; then there is no one to tell.
            let _ = sender.send(progress);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let progress = self
            .take_last()
            .await
            .map_err(|_| earlier_part_failed(&self.path))?;
        let total = progress.sent + progress.carry.len() as u64;
        let finished = send_chunk(
            &self.api,
            &self.session,
            &self.path,
            progress.sent,
            progress.carry,
            Some(total),
        )
        .await
        .map_err(|error| error.into_store_error(&self.path, false))?;
        finished.ok_or_else(|| {
            ApiError::protocol(format!(
                "uploading {}: the server did not finish the object",
                self.path
            ))
            .into_store_error(&self.path, false)
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        drop(self.take_last());
        self.api
            .cancel_session(&self.session, &self.path)
            .await
            .map_err(|error| error.into_store_error(&self.path, false))
    }
}

fn earlier_part_failed(path: &Path) -> object_store::Error {
    ApiError::protocol(format!(
        "uploading {path}: an earlier part failed, so this one cannot follow it"
    ))
    .into_store_error(path, false)
}

/// Sends what a part completes of the session's next quanta; returns the new progress.
async fn send_part(
    api: &JsonApi,
    session: &SessionUri,
    path: &Path,
    progress: Progress,
    data: PutPayload,
) -> Result<Progress, ApiError> {
    let (aligned, carry) = split_aligned(progress.carry, data);
    if aligned.is_empty() {
        return Ok(Progress {
            sent: progress.sent,
            carry,
        });
    }
    let sent = progress.sent + aligned.len() as u64;
    send_chunk(api, session, path, progress.sent, aligned, None).await?;
    Ok(Progress { sent, carry })
}

/// Joins the carry and a part, and splits them into the longest prefix that is a whole
/// number of quanta (to send now) and the rest (to carry to the next part). The rest is
/// copied, so it does not keep the whole part's memory alive.
fn split_aligned(carry: Bytes, data: PutPayload) -> (Bytes, Bytes) {
    let total = carry.len() + data.content_length();
    let aligned = total - total % QUANTUM;
    let joined = if carry.is_empty() {
        // No copy when the part is one buffer.
        Bytes::from(data)
    } else {
        let mut joined = BytesMut::with_capacity(total);
        joined.extend_from_slice(&carry);
        for piece in &data {
            joined.extend_from_slice(piece);
        }
        joined.freeze()
    };
    let rest = Bytes::copy_from_slice(&joined[aligned..]);
    (joined.slice(..aligned), rest)
}

/// Sends `body` as the session's bytes from `start` until the server holds all of them;
/// with `total` (the object's size) this finishes the object, and the answer is its
/// `PutResult`. After a transient failure, or when the server kept only some of the bytes,
/// it asks the session where it stands and sends the rest — giving up after
/// [`MAX_ATTEMPTS`] rounds that moved nothing.
async fn send_chunk(
    api: &JsonApi,
    session: &SessionUri,
    path: &Path,
    start: u64,
    body: Bytes,
    total: Option<u64>,
) -> Result<Option<PutResult>, ApiError> {
    let end = start + body.len() as u64;
    let mut offset = start;
    let mut stalls = 0;
    loop {
        let skip = usize::try_from(offset - start)
            .map_err(|_| ApiError::protocol(format!("uploading {path}: offset overflow")))?;
        let reply = match api
            .put_chunk(session, path, offset, body.slice(skip..), total)
            .await
        {
            Ok(reply) => reply,
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => {
                stalls += 1;
                if stalls >= MAX_ATTEMPTS {
                    return Err(error);
                }
                tokio::time::sleep(backoff(stalls)).await;
                match api.session_status(session, path).await {
                    Ok(reply) => reply,
                    // Still unreachable: the next round tries the bytes again.
                    Err(error) if error.is_transient() => continue,
                    Err(error) => return Err(error),
                }
            }
        };
        let held = match reply {
            ChunkReply::Done(result) if total.is_some() => return Ok(Some(result)),
            ChunkReply::Done(_) => {
                return Err(ApiError::protocol(format!(
                    "uploading {path}: the server finished the object before its last part"
                )));
            }
            ChunkReply::Incomplete(held) => held,
        };
        if held < start || held > end {
            return Err(ApiError::protocol(format!(
                "uploading {path}: the server holds {held} bytes, \
                 expected between {start} and {end}"
            )));
        }
        if held == end && total.is_none() {
            return Ok(None);
        }
        if held > offset {
            offset = held;
        } else {
            stalls += 1;
            if stalls >= MAX_ATTEMPTS {
                return Err(ApiError::protocol(format!(
                    "uploading {path}: the server keeps no more bytes after {held}"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    #[test]
    fn a_short_part_is_all_carried() {
        let (aligned, carry) = split_aligned(Bytes::new(), PutPayload::from(bytes(1000, 1)));
        assert!(aligned.is_empty());
        assert_eq!(carry, bytes(1000, 1));
    }

    #[test]
    fn an_aligned_part_is_sent_whole_without_copying() {
        let part = bytes(2 * QUANTUM, 7);
        let pointer = part.as_ptr();
        let (aligned, carry) = split_aligned(Bytes::new(), PutPayload::from(part));
        assert_eq!(aligned.len(), 2 * QUANTUM);
        assert_eq!(aligned.as_ptr(), pointer);
        assert!(carry.is_empty());
    }

    #[test]
    fn carry_and_part_join_in_order() {
        let carry = bytes(100, 1);
        let part = PutPayload::from_iter([bytes(QUANTUM, 2), bytes(QUANTUM + 50, 3)]);
        let (aligned, rest) = split_aligned(carry, part);
        assert_eq!(aligned.len(), 2 * QUANTUM);
        assert_eq!(rest.len(), 150);
        assert!(aligned[..100].iter().all(|&byte| byte == 1));
        assert!(aligned[100..100 + QUANTUM].iter().all(|&byte| byte == 2));
        assert!(aligned[100 + QUANTUM..].iter().all(|&byte| byte == 3));
        assert!(rest.iter().all(|&byte| byte == 3));
    }

    #[test]
    fn every_split_keeps_all_bytes_and_sends_whole_quanta() {
        let mut carry = Bytes::new();
        let mut sent = Vec::new();
        let mut expected = Vec::new();
        for (index, len) in [5 * 1024 * 1024 + 1000, 17, QUANTUM - 1, 3 * QUANTUM, 0, 1]
            .into_iter()
            .enumerate()
        {
            let fill = u8::try_from(index).unwrap();
            expected.extend(std::iter::repeat_n(fill, len));
            let (aligned, rest) = split_aligned(carry, PutPayload::from(bytes(len, fill)));
            assert_eq!(aligned.len() % QUANTUM, 0);
            assert!(rest.len() < QUANTUM);
            sent.extend_from_slice(&aligned);
            carry = rest;
        }
        sent.extend_from_slice(&carry);
        assert!(sent == expected, "bytes were lost or reordered");
    }
}
