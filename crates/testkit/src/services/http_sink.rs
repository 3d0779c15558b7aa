//! An HTTP receiver that stands in for the far end of a webhook (Slack, PagerDuty Events v2, a
//! generic webhook, a pre/post hook endpoint): a real HTTP/1.1 server on `127.0.0.1:<free
//! port>`, plain or HTTPS, that records every request it gets — method, path, query, headers,
//! body — and answers `200 OK` unless the test told it otherwise.
//!
//! The test scripts the answers of the next requests, in arrival order: fail them with a status
//! of its choice ([`HttpSink::fail_next`]: `500`, `503`, `429` with a `Retry-After`, …), delay
//! one ([`HttpSink::delay_next`]), or hang one until the sink is dropped
//! ([`HttpSink::hang_next`], for hook timeouts). [`HttpSink::wait_for_requests`] waits for a
//! number of recorded requests with a deadline, so a test waits for the event, not for time.
//!
//! Every request is recorded when its body has been read, before it is answered, so a hung
//! request is already visible to the test.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::HOST;
use super::self_signed::SelfSigned;

/// How the sink answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answers with this status, the body and the headers (name, value) given.
    Respond {
        /// The HTTP status code.
        status: u16,
        /// Extra response headers, e.g. `("Retry-After", "1")`.
        headers: Vec<(String, String)>,
        /// The response body.
        body: String,
    },
    /// Waits this long, then answers with the default reply (a slow receiver).
    Delay(Duration),
    /// Never answers while the sink runs (a receiver that hangs, for timeout tests): the
    /// client times out, or gets an error when the sink is dropped.
    Hang,
}

impl Reply {
    /// A reply with `status` and a short text body naming it. A status outside 100–999 is
    /// answered as `500`.
    pub fn status(status: u16) -> Self {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: format!("status {status} from the test's HTTP sink"),
        }
    }
}

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path, without the query, e.g. `/services/T000/B000/XXX`.
    pub path: String,
    /// The raw query string without the `?`, if the URL had one.
    pub query: Option<String>,
    /// The headers in arrival order; names lowercase, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body, as received.
    pub body: Bytes,
    /// How the sink answered (or is answering) it.
    pub reply: Reply,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text; an error if it is not.
    pub fn body_text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.body).context("the request body is not UTF-8")
    }

    /// The body parsed as JSON; an error if it is not JSON.
    pub fn body_json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the request body is not JSON")
    }
}

#[derive(Debug)]
struct State {
    /// Answers for the next requests, first one first.
    scripted: std::collections::VecDeque<Reply>,
    /// The answer once the script is used up.
    default_reply: Reply,
}

/// A running HTTP sink; stops (and drops every open connection, hung ones included) when
/// dropped.
#[derive(Debug)]
pub struct HttpSink {
    addr: SocketAddr,
    tls: Option<SelfSigned>,
    state: Arc<Mutex<State>>,
    recorded: watch::Sender<Vec<RecordedRequest>>,
    task: JoinHandle<()>,
}

impl HttpSink {
    /// Starts a plain-HTTP sink on a free port of `127.0.0.1`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None).await
    }

    /// Starts an HTTPS sink on a free port of `127.0.0.1`, with a fresh self-signed certificate
    /// for `localhost` and `127.0.0.1`; the client trusts [`Self::ca_pem`].
    pub async fn start_https() -> anyhow::Result<Self> {
        Self::start_inner(Some(SelfSigned::localhost()?)).await
    }

    async fn start_inner(tls: Option<SelfSigned>) -> anyhow::Result<Self> {
        // Port 0: the OS picks a free port while we hold the socket, so no race to lose.
        let listener = TcpListener::bind((HOST, 0))
            .await
            .context("binding the HTTP sink")?;
        let addr = listener.local_addr()?;
        let acceptor = match &tls {
            Some(cert) => Some(TlsAcceptor::from(cert.server_config()?)),
            None => None,
        };
        let state = Arc::new(Mutex::new(State {
            scripted: std::collections::VecDeque::new(),
            default_reply: Reply::status(200),
        }));
        let (recorded, _) = watch::channel(Vec::new());
        let receiver = Receiver {
            state: Arc::clone(&state),
            recorded: recorded.clone(),
        };
        let task = tokio::spawn(serve(listener, acceptor, Arc::new(receiver)));
        Ok(Self {
            addr,
            tls,
            state,
            recorded,
            task,
        })
    }

    /// The base URL, `http://127.0.0.1:<port>` (or `https://localhost:<port>` for an HTTPS
    /// sink: the name a certificate check expects).
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// The URL of `path` on the sink (`path` starts with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The certificate of an HTTPS sink, PEM: the root a client must trust. `None` for a
    /// plain-HTTP sink.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|cert| cert.cert_pem.as_str())
    }

    /// Answers the next `times` requests (after the ones already scripted) with `status`.
    pub fn fail_next(&self, times: usize, status: u16) {
        self.script(times, Reply::status(status));
    }

    /// Answers the next `times` requests (after the ones already scripted) with `reply`.
    pub fn script(&self, times: usize, reply: Reply) {
        let mut state = self.lock();
        state.scripted.extend(std::iter::repeat_n(reply, times));
    }

    /// Delays the answer to the next request (after the ones already scripted) by `delay`.
    pub fn delay_next(&self, delay: Duration) {
        self.script(1, Reply::Delay(delay));
    }

    /// Never answers the next request (after the ones already scripted).
    pub fn hang_next(&self) {
        self.script(1, Reply::Hang);
    }

    /// Sets the answer given once the script is used up (`200` with a short body at start):
    /// e.g. `202` with PagerDuty's JSON for a PagerDuty stand-in. A [`Reply::Delay`] here
    /// would delay into itself, so only a [`Reply::Respond`] is accepted.
    pub fn set_default_reply(&self, reply: Reply) -> anyhow::Result<()> {
        if !matches!(reply, Reply::Respond { .. }) {
            bail!("the default reply must be Reply::Respond, not {reply:?}");
        }
        self.lock().default_reply = reply;
        Ok(())
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded.borrow().clone()
    }

    /// Waits until at least `count` requests were recorded and returns all recorded ones;
    /// fails after `timeout` with the ones that did arrive.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedRequest>> {
        let mut seen = self.recorded.subscribe();
        let waited = tokio::time::timeout(timeout, seen.wait_for(|all| all.len() >= count)).await;
        match waited {
            Ok(Ok(all)) => Ok(all.clone()),
            // The sender lives in `self`, so the channel cannot close while we wait.
            Ok(Err(_)) => bail!("the HTTP sink stopped"),
            Err(_) => {
                let arrived: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                bail!(
                    "timed out after {timeout:?} waiting for {count} request(s) at the HTTP sink; \
                     {} arrived: {arrived:?}",
                    arrived.len()
                )
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere in a test must not hide what the sink saw.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// What each connection's service shares.
struct Receiver {
    state: Arc<Mutex<State>>,
    recorded: watch::Sender<Vec<RecordedRequest>>,
}

async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, receiver: Arc<Receiver>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        // Reap finished connections so the set does not grow with every request.
        while connections.try_join_next().is_some() {}
        let receiver = Arc::clone(&receiver);
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => {
                    // A client that fails the handshake (an untrusted certificate) just
                    // leaves; it sent no request to record.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, receiver).await;
                    }
                }
                None => serve_connection(stream, receiver).await,
            }
        });
    }
}

async fn serve_connection<S>(stream: S, receiver: Arc<Receiver>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let receiver = Arc::clone(&receiver);
        async move { Ok::<_, Infallible>(receiver.handle(request).await) }
    });
    // A client that hangs up mid-request is not the sink's concern.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl Receiver {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => return respond(400, &[], &format!("reading the body: {error}")),
        };
        let (reply, default_reply) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let reply = state
                .scripted
                .pop_front()
                .unwrap_or_else(|| state.default_reply.clone());
            (reply, state.default_reply.clone())
        };
        let recorded = RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body,
            reply: reply.clone(),
        };
        self.recorded.send_modify(|all| all.push(recorded));
        let answer = match reply {
            Reply::Respond { .. } => reply,
            Reply::Delay(delay) => {
                tokio::time::sleep(delay).await;
                default_reply
            }
            Reply::Hang => std::future::pending::<Reply>().await,
        };
        match answer {
            Reply::Respond {
                status,
                headers,
                body,
            } => respond(status, &headers, &body),
            // `set_default_reply` accepts only `Respond`.
            Reply::Delay(_) | Reply::Hang => respond(500, &[], "unreachable default reply"),
        }
    }
}

fn respond(status: u16, headers: &[(String, String)], body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
