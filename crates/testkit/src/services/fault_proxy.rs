//! An HTTP proxy that stands between a client and a real server (an object-store emulator)
//! and answers chosen requests with an error status instead of forwarding them — the
//! transient failures (`503`, `429`) a cloud API gives now and then and an emulator never
//! does. Everything else is forwarded unchanged, so the server behind it is still the real
//! thing; only the faults are made up, and each test says exactly which.
//!
//! It can also rewrite the answers to chosen requests ([`Rewrite`]): the states an emulator
//! never reaches (an RDS snapshot that stays `creating` or ends `failed` in moto, which makes
//! every snapshot `available` at once).
//!
//! `Location` headers that point at the server are rewritten to point at the proxy, so
//! resumable-upload sessions keep going through it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HOST as HOST_HEADER, HeaderValue, LOCATION};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::HOST;

/// Which `Host` header a forwarded request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostHeader {
    /// The server's own, as a reverse proxy sends: for servers that route on `Host`
    /// (fake-gcs-server reads any other host as a virtual-hosted bucket name).
    Upstream,
    /// The one the client sent: for clients that sign it (S3's SigV4).
    AsSent,
}

/// Requests the proxy fails instead of forwarding.
#[derive(Clone, Debug)]
pub struct Fault {
    /// HTTP method to match (`PUT`, `POST`, …).
    pub method: String,
    /// Text the request's path and query must contain.
    pub path_contains: String,
    /// The status to answer with.
    pub status: u16,
    /// How many matching requests to fail; later ones are forwarded.
    pub times: usize,
}

/// Answers the proxy rewrites: for every request whose body contains `body_contains`, each
/// `from` in the server's answer becomes `to` (the request itself is forwarded unchanged).
#[derive(Clone, Debug)]
pub struct Rewrite {
    /// Text the request's body must contain (e.g. `Action=DescribeDBSnapshots`).
    pub body_contains: String,
    /// Text to replace in the answer's body.
    pub from: String,
    /// What replaces it.
    pub to: String,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    rewrites: Vec<Rewrite>,
    /// `METHOD path?query → status` of every fault served, in order.
    injected: Vec<String>,
}

/// A running fault-injecting proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, host_header: HostHeader) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((HOST, 0))
            .await
            .context("binding the fault proxy")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let forwarder = Forwarder {
            upstream: upstream.trim_end_matches('/').to_string(),
            own_origin: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            state: Arc::clone(&state),
            host_header,
        };
        let task = tokio::spawn(serve(listener, Arc::new(forwarder)));
        Ok(FaultProxy { addr, state, task })
    }

    /// The proxy's base URL, used in place of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails the next `fault.times` requests that match `fault`.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Rewrites the answers to every later request that matches `rewrite`.
    pub fn rewrite(&self, rewrite: Rewrite) {
        self.lock().rewrites.push(rewrite);
    }

    /// Stops every rewrite: answers pass unchanged again.
    pub fn clear_rewrites(&self) {
        self.lock().rewrites.clear();
    }

    /// The faults served so far, as `METHOD path?query → status`.
    pub fn injected(&self) -> Vec<String> {
        self.lock().injected.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere in a test must not hide what the proxy saw.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Forwarder {
    upstream: String,
    own_origin: String,
    client: reqwest::Client,
    state: Arc<Mutex<State>>,
    host_header: HostHeader,
}

async fn serve(listener: TcpListener, forwarder: Arc<Forwarder>) {
    while let Ok((stream, _)) = listener.accept().await {
        let forwarder = Arc::clone(&forwarder);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let forwarder = Arc::clone(&forwarder);
                async move { Ok::<_, Infallible>(forwarder.handle(request).await) }
            });
            // A client that hangs up mid-request is not the proxy's concern.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Forwarder {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        // Read the whole body first, as a server would before it fails a request.
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => return plain(StatusCode::BAD_REQUEST, &error.to_string()),
        };
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), ToString::to_string);
        if let Some(status) = self.take_fault(parts.method.as_str(), &target) {
            return plain(status, "injected by the test's fault proxy");
        }
        let rewrites = self.rewrites_for(&body);
        let mut forwarded = self
            .client
            .request(parts.method, format!("{}{target}", self.upstream))
            .body(body);
        for (name, value) in &parts.headers {
            // Without a `Host` of its own, the client sets the server's.
            if name != HOST_HEADER || self.host_header == HostHeader::AsSent {
                forwarded = forwarded.header(name, value);
            }
        }
        match forwarded.send().await {
            Ok(answer) => self.relay(answer, &rewrites).await,
            Err(error) => plain(StatusCode::BAD_GATEWAY, &error.to_string()),
        }
    }

    /// The status of the first fault that matches and still has uses left.
    fn take_fault(&self, method: &str, target: &str) -> Option<StatusCode> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fault = state.faults.iter_mut().find(|fault| {
            fault.times > 0 && fault.method == method && target.contains(&fault.path_contains)
        })?;
        fault.times -= 1;
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        state
            .injected
            .push(format!("{method} {target} → {}", status.as_u16()));
        Some(status)
    }

    /// The rewrites whose text the request's body contains.
    fn rewrites_for(&self, body: &[u8]) -> Vec<Rewrite> {
        let body = String::from_utf8_lossy(body);
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .rewrites
            .iter()
            .filter(|rewrite| body.contains(&rewrite.body_contains))
            .cloned()
            .collect()
    }

    async fn relay(
        &self,
        answer: reqwest::Response,
        rewrites: &[Rewrite],
    ) -> Response<Full<Bytes>> {
        let status = answer.status();
        let headers = answer.headers().clone();
        let mut body = match answer.bytes().await {
            Ok(body) => body,
            Err(error) => return plain(StatusCode::BAD_GATEWAY, &error.to_string()),
        };
        if !rewrites.is_empty() {
            let mut text = String::from_utf8_lossy(&body).into_owned();
            for rewrite in rewrites {
                text = text.replace(&rewrite.from, &rewrite.to);
            }
            body = Bytes::from(text);
        }
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        for (name, value) in &headers {
            if name == LOCATION {
                let rewritten = value
                    .to_str()
                    .ok()
                    .map(|location| location.replacen(&self.upstream, &self.own_origin, 1))
                    .and_then(|location| HeaderValue::from_str(&location).ok());
                if let Some(rewritten) = rewritten {
                    response.headers_mut().append(name, rewritten);
                    continue;
                }
            }
            // hyper sets the framing of the body it sends.
            if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONTENT_LENGTH {
                response.headers_mut().append(name, value.clone());
            }
        }
        response
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}
