//! The admin HTTP server, one per process: `/metrics` (OpenMetrics text), `/healthz` (the process
//! serves requests) and `/readyz` (the caches this process needs are synced).
//!
//! Readiness deliberately ignores leadership: a standby replica has nothing to sync and reports
//! ready, so rolling updates of a leader-elected Deployment never stall waiting for a standby to
//! become leader. The leader reports ready once every controller's cache has done its initial list.

use std::{
    collections::BTreeSet,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The readiness of this process, shared by the controllers and the admin server.
#[derive(Debug, Default)]
pub struct Readiness {
    unsynced: Mutex<BTreeSet<String>>,
}

impl Readiness {
    /// `controller` is starting and its cache is not synced yet.
    pub fn syncing(&self, controller: &str) {
        self.lock().insert(controller.to_owned());
    }

    /// `controller`'s cache finished its initial list.
    pub fn synced(&self, controller: &str) {
        self.lock().remove(controller);
    }

    /// The controllers whose caches are not synced yet (empty when ready).
    pub fn unsynced(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // Single insert/remove updates cannot leave the set half-changed; poisoning is harmless.
        self.unsynced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the admin server serves.
#[derive(Clone)]
pub struct AdminState {
    /// All metrics of the process: the core ones and the operator's own.
    pub registry: Arc<Registry>,
    /// Cache readiness of the controllers.
    pub readiness: Arc<Readiness>,
}

/// Binds `addr` and returns the bound address (useful with port 0) and the serving future, which
/// runs until `shutdown` is cancelled.
pub async fn bind(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "admin server listening (/metrics, /healthz, /readyz)");
    Ok((local, serve(listener, state, shutdown)))
}

async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Usually a transient resource shortage (EMFILE); keep serving.
                tracing::warn!(%error, "admin server accept failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&request, &state)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

fn route<B>(request: &Request<B>, state: &AdminState) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let unsynced = state.readiness.unsynced();
            if unsynced.is_empty() {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("caches not synced: {}\n", unsynced.join(", ")),
                )
            }
        }
        "/metrics" => match crate::metrics::encode(&state.registry) {
            Ok(body) => with_type(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            ),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n".into(),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AdminState {
        AdminState {
            registry: Arc::new(Registry::default()),
            readiness: Arc::new(Readiness::default()),
        }
    }

    fn get(path: &str) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = path.parse().unwrap_or_default();
        request
    }

    #[test]
    fn readyz_follows_cache_sync() {
        let state = state();
        assert_eq!(route(&get("/readyz"), &state).status(), StatusCode::OK);
        state.readiness.syncing("sample");
        assert_eq!(
            route(&get("/readyz"), &state).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.readiness.synced("sample");
        assert_eq!(route(&get("/readyz"), &state).status(), StatusCode::OK);
    }

    #[test]
    fn routes() {
        let state = state();
        assert_eq!(route(&get("/healthz"), &state).status(), StatusCode::OK);
        assert_eq!(route(&get("/metrics"), &state).status(), StatusCode::OK);
        assert_eq!(route(&get("/nope"), &state).status(), StatusCode::NOT_FOUND);
    }
}
