//! The writing half of Google's JSON API (`/upload/storage/v1/...`): single-request multipart
//! uploads and resumable upload sessions. Only writes go through here; object_store reads,
//! lists and deletes.
//!
//! Requests that open an upload carry the bearer token of object_store's own credential
//! provider, or no `Authorization` header at all when that token is empty (an emulator with
//! OAuth disabled). Requests to a session URI carry no token: the URI itself authorizes them,
//! and the token should never go to a host only a server's answer named.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use object_store::gcp::GcpCredentialProvider;
use object_store::path::Path;
use object_store::{PutPayload, PutResult};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, Client, RequestBuilder, Response, StatusCode};

use super::error::ApiError;

/// Resumable uploads move data in multiples of this (every request but the last).
pub(crate) const QUANTUM: usize = 256 * 1024;

/// Tries of one request before giving up on transient failures.
pub(crate) const MAX_ATTEMPTS: u32 = 4;

/// Google answers a successful session cancellation with this non-standard status.
const CANCELLED: u16 = 499;

/// Metadata parts of multipart uploads and session starts are JSON.
const JSON: &str = "application/json; charset=UTF-8";

/// The pause before try `attempt + 1`.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(5))
}

/// The URI of one resumable upload session. Whoever holds it can write the object, so its
/// `Debug` hides it and no error message ever includes it.
#[derive(Clone)]
pub(crate) struct SessionUri(String);

impl fmt::Debug for SessionUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionUri(..)")
    }
}

/// What the server said to one request of a resumable session.
#[derive(Debug)]
pub(crate) enum ChunkReply {
    /// `308 Resume Incomplete`: the server holds this many bytes of the object.
    Incomplete(u64),
    /// The object is complete.
    Done(PutResult),
}

/// Where and how to write the objects of one bucket.
#[derive(Debug)]
pub(crate) struct JsonApi {
    client: Client,
    /// `https://storage.googleapis.com` or an emulator's URL, without a trailing `/`.
    base_url: String,
    bucket: String,
    credentials: GcpCredentialProvider,
}

impl JsonApi {
    /// A client for `bucket` at `base_url` (no request is made yet).
    pub(crate) fn new(
        base_url: &str,
        bucket: &str,
        credentials: GcpCredentialProvider,
    ) -> Result<Self, ApiError> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Per request; one request carries at most one part (a few MiB).
            .timeout(Duration::from_secs(300))
            // A resumable session's `308` means "resume incomplete", not a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                ApiError::protocol(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(JsonApi {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            credentials,
        })
    }

    fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base_url,
            encode_segment(&self.bucket)
        )
    }

    async fn authorize(&self, request: RequestBuilder) -> Result<RequestBuilder, ApiError> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|error| ApiError::protocol(format!("no GCS credentials: {error}")))?;
        Ok(if credential.bearer.is_empty() {
            request
        } else {
            request.bearer_auth(&credential.bearer)
        })
    }

    /// Sends an authorized request built by `build`, again after transient failures; an
    /// answer other than success is an error.
    async fn send_authorized(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ApiError> {
        let mut attempt = 1;
        loop {
            let request = self.authorize(build()).await?;
            let error = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => ApiError::from_response(what, response).await,
                Err(error) => ApiError::transport(what, error),
            };
            if attempt >= MAX_ATTEMPTS || !error.is_transient() {
                return Err(error);
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Writes a whole object in one request (`uploadType=multipart`: the metadata and the
    /// bytes in one `multipart/related` body). `metadata` is the object resource (`name`,
    /// `contentType`, …); `generation_match` is `ifGenerationMatch` (`"0"`: only if no
    /// object exists).
    ///
    /// Multipart rather than `uploadType=media`: both carry preconditions on real GCS, but
    /// fake-gcs-server checks them on multipart uploads only. A retry after a lost answer
    /// can meet the object its first try created, so with `"0"` it then fails as if the
    /// object had existed before — the usual price of conditional retries.
    pub(crate) async fn upload(
        &self,
        path: &Path,
        metadata: &serde_json::Value,
        payload: PutPayload,
        generation_match: Option<&str>,
    ) -> Result<PutResult, ApiError> {
        let what = format!("uploading {path}");
        let boundary = random_boundary()?;
        let content_type = metadata
            .get("contentType")
            .and_then(|value| value.as_str())
            .unwrap_or("application/octet-stream");
        let pieces = multipart_body(&boundary, metadata, content_type, &payload);
        let length: usize = pieces.iter().map(Bytes::len).sum();
        let url = self.upload_url();
        let response = self
            .send_authorized(&what, || {
                let mut request = self.client.post(&url).query(&[("uploadType", "multipart")]);
                if let Some(generation) = generation_match {
                    request = request.query(&[("ifGenerationMatch", generation)]);
                }
                // The pieces are shared, not copied: the payload may be large.
                let pieces = pieces.clone().into_iter().map(Ok::<_, std::io::Error>);
                request
                    .header(
                        CONTENT_TYPE,
                        format!("multipart/related; boundary={boundary}"),
                    )
                    .header(CONTENT_LENGTH, length)
                    .body(Body::wrap_stream(futures::stream::iter(pieces)))
            })
            .await?;
        let body = response
            .bytes()
            .await
            .map_err(|error| ApiError::transport(&what, error))?;
        Ok(put_result(&body))
    }

    /// Opens a resumable upload session for the object `metadata` describes.
    pub(crate) async fn start_session(
        &self,
        path: &Path,
        metadata: &serde_json::Value,
    ) -> Result<SessionUri, ApiError> {
        let what = format!("starting a resumable upload of {path}");
        let url = self.upload_url();
        let metadata = metadata.to_string();
        let response = self
            .send_authorized(&what, || {
                self.client
                    .post(&url)
                    .query(&[("uploadType", "resumable")])
                    .header(CONTENT_TYPE, JSON)
                    .body(metadata.clone())
            })
            .await?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .filter(|uri| uri.starts_with("https://") || uri.starts_with("http://"))
            .ok_or_else(|| ApiError::protocol(format!("{what}: the answer has no session URI")))?;
        Ok(SessionUri(location.to_string()))
    }

    /// Sends `body` as the session's bytes from offset `start`; `total` is the object's size
    /// when this request ends it. One try: after a failure the caller asks the session where
    /// it stands ([`Self::session_status`]) and resumes from there.
    pub(crate) async fn put_chunk(
        &self,
        session: &SessionUri,
        path: &Path,
        start: u64,
        body: Bytes,
        total: Option<u64>,
    ) -> Result<ChunkReply, ApiError> {
        let what = format!("uploading {path}");
        let range = content_range(start, body.len() as u64, total);
        let request = self
            .client
            .put(&session.0)
            .header(CONTENT_RANGE, range)
            .header(CONTENT_LENGTH, body.len())
            .body(body);
        chunk_reply(&what, request).await
    }

    /// Asks how many bytes of the session the server holds, or whether the object is done.
    /// (fake-gcs-server finishes the object on this question; only real GCS answers it as
    /// documented — it is asked after failures only.)
    pub(crate) async fn session_status(
        &self,
        session: &SessionUri,
        path: &Path,
    ) -> Result<ChunkReply, ApiError> {
        let what = format!("resuming the upload of {path}");
        let request = self
            .client
            .put(&session.0)
            .header(CONTENT_RANGE, content_range(0, 0, None))
            .header(CONTENT_LENGTH, 0);
        chunk_reply(&what, request).await
    }

    /// Cancels a resumable session: what it received is discarded and never becomes an
    /// object. A session the server no longer knows counts as cancelled.
    pub(crate) async fn cancel_session(
        &self,
        session: &SessionUri,
        path: &Path,
    ) -> Result<(), ApiError> {
        let what = format!("cancelling the upload of {path}");
        let mut attempt = 1;
        loop {
            let request = self.client.delete(&session.0).header(CONTENT_LENGTH, 0);
            let error = match request.send().await {
                Ok(response)
                    if response.status().is_success()
                        || matches!(response.status().as_u16(), CANCELLED | 404 | 410) =>
                {
                    return Ok(());
                }
                Ok(response) => ApiError::from_response(&what, response).await,
                Err(error) => ApiError::transport(&what, error),
            };
            if attempt >= MAX_ATTEMPTS || !error.is_transient() {
                return Err(error);
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
}

/// Sends one session request and reads its answer.
async fn chunk_reply(what: &str, request: RequestBuilder) -> Result<ChunkReply, ApiError> {
    let response = request
        .send()
        .await
        .map_err(|error| ApiError::transport(what, error))?;
    let status = response.status();
    // `308` is "Resume Incomplete" here (fake-gcs-server words it "Permanent Redirect").
    if status == StatusCode::PERMANENT_REDIRECT {
        let range = response.headers().get(RANGE).map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::protocol(format!("{what}: a non-text Range header")))
        });
        return Ok(ChunkReply::Incomplete(persisted_bytes(range.transpose()?)?));
    }
    if status.is_success() {
        let body = response
            .bytes()
            .await
            .map_err(|error| ApiError::transport(what, error))?;
        return Ok(ChunkReply::Done(put_result(&body)));
    }
    Err(ApiError::from_response(what, response).await)
}

/// Everything but RFC 3986's unreserved characters is escaped, `/` included: a bucket or an
/// object name is one path segment of a JSON API URL.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` for one URL path segment.
fn encode_segment(text: &str) -> String {
    utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

/// A multipart boundary that cannot plausibly occur in the object's bytes.
fn random_boundary() -> Result<String, ApiError> {
    let bytes: [u8; 16] = crate::pipeline::encrypt::random_bytes()
        .map_err(|error| ApiError::protocol(format!("no multipart boundary: {error}")))?;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("vertice-{hex}"))
}

/// The pieces of a `multipart/related` body: the metadata part, then the object's bytes
/// (shared with `payload`, not copied), then the closing delimiter.
fn multipart_body(
    boundary: &str,
    metadata: &serde_json::Value,
    content_type: &str,
    payload: &PutPayload,
) -> Vec<Bytes> {
    let head = format!(
        "--{boundary}\r\nContent-Type: {JSON}\r\n\r\n{metadata}\r\n\
         --{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut pieces = Vec::with_capacity(payload.as_ref().len() + 2);
    pieces.push(Bytes::from(head));
    pieces.extend(payload.iter().cloned());
    pieces.push(Bytes::from(tail));
    pieces
}

/// `Content-Range` of a session request that sends `len` bytes from offset `start`; `total`
/// is the object's size when this request ends it. With no bytes it is the form that
/// finishes the object (`bytes */total`) or asks where the session stands (`bytes */*`).
pub(crate) fn content_range(start: u64, len: u64, total: Option<u64>) -> String {
    let total = total.map_or_else(|| "*".to_string(), |total| total.to_string());
    if len == 0 {
        format!("bytes */{total}")
    } else {
        format!("bytes {start}-{}/{total}", start + len - 1)
    }
}

/// How many bytes the server holds, from the `Range` header of a `308` (`bytes=0-N` → N+1;
/// no header → nothing yet).
pub(crate) fn persisted_bytes(range: Option<&str>) -> Result<u64, ApiError> {
    let Some(range) = range else {
        return Ok(0);
    };
    let invalid =
        || ApiError::protocol(format!("the server sent an invalid Range header {range:?}"));
    let spec = range.trim();
    let spec = spec.strip_prefix("bytes=").unwrap_or(spec);
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    if first.trim() != "0" {
        return Err(invalid());
    }
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    last.checked_add(1).ok_or_else(invalid)
}

/// The `PutResult` of a finished upload, from the object resource in the answer. Only the
/// generation: the JSON API's `etag` is not the XML API's `ETag`, which object_store's reads
/// compare against, so reporting it would make conditional reads fail.
fn put_result(body: &[u8]) -> PutResult {
    let generation = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|json| {
            json.get("generation")
                .and_then(|value| value.as_str())
                .map(str::to_string)
        });
    PutResult {
        e_tag: None,
        version: generation,
        extensions: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(content_range(0, 262_144, None), "bytes 0-262143/*");
        assert_eq!(
            content_range(262_144, 524_288, None),
            "bytes 262144-786431/*"
        );
        assert_eq!(
            content_range(786_432, 10, Some(786_442)),
            "bytes 786432-786441/786442"
        );
        assert_eq!(content_range(0, 1, Some(1)), "bytes 0-0/1");
        assert_eq!(content_range(786_432, 0, Some(786_432)), "bytes */786432");
        assert_eq!(content_range(0, 0, Some(0)), "bytes */0");
        assert_eq!(content_range(0, 0, None), "bytes */*");
    }

    #[test]
    fn persisted_from_range_headers() {
        assert_eq!(persisted_bytes(None).unwrap(), 0);
        assert_eq!(persisted_bytes(Some("bytes=0-262143")).unwrap(), 262_144);
        assert_eq!(persisted_bytes(Some("0-9")).unwrap(), 10);
        assert!(persisted_bytes(Some("bytes=5-9")).is_err());
        assert!(persisted_bytes(Some("bytes=0-")).is_err());
        assert!(persisted_bytes(Some("garbage")).is_err());
        assert!(persisted_bytes(Some("bytes=0-18446744073709551615")).is_err());
    }

    #[test]
    fn put_results_carry_the_generation() {
        let result = put_result(br#"{"etag": "CJjV", "generation": "1795427894615365"}"#);
        assert_eq!(result.version.as_deref(), Some("1795427894615365"));
        assert!(result.e_tag.is_none());
        assert!(put_result(b"not json").version.is_none());
    }

    #[test]
    fn multipart_bodies_frame_metadata_and_bytes() {
        let metadata = serde_json::json!({ "name": "a/b" });
        let payload = PutPayload::from_iter([Bytes::from("hel"), Bytes::from("lo")]);
        let pieces = multipart_body("B", &metadata, "text/plain", &payload);
        assert_eq!(pieces.len(), 4, "the payload's pieces are kept, not copied");
        let body: Vec<u8> = pieces.iter().flat_map(|piece| piece.to_vec()).collect();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--B\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"name\":\"a/b\"}\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B--\r\n"
        );
    }

    #[test]
    fn boundaries_differ() {
        let first = random_boundary().unwrap();
        assert!(first.len() > 30);
        assert_ne!(first, random_boundary().unwrap());
    }

    #[test]
    fn session_uris_stay_out_of_debug_output() {
        let session = SessionUri("http://h/upload?upload_id=secret".into());
        assert!(!format!("{session:?}").contains("secret"));
    }

    #[test]
    fn bucket_names_are_encoded() {
        assert_eq!(encode_segment("my-bucket.v1"), "my-bucket.v1");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
