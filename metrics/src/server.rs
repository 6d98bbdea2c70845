//! A small HTTP server for `/metrics` (feature `server`), on hyper.
//!
//! `GET /metrics` answers the registry in the OpenMetrics text format; any other path
//! is 404, any other method 405. Each connection must send its request head within
//! 10 s, and at most 64 connections are served at once (more wait in the kernel's
//! accept queue), so a slow or crowded scraper cannot pin the node's memory.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a connection may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no local address.
    #[error("cannot read the metrics listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
}

/// Serves a registry's `/metrics` over HTTP/1.1.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: Arc<Registry>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// [`ServeError`] if the address cannot be bound.
    pub async fn bind(addr: SocketAddr, registry: Arc<Registry>) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
        Ok(MetricsServer {
            listener,
            local_addr,
            registry,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until the future is dropped. Accept errors (out of file descriptors, for
    /// example) are logged and retried after a pause; they never end the server.
    pub async fn run(self) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (socket, remote) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accepting a metrics connection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = self.registry.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let registry = registry.clone();
                    async move { Ok::<_, Infallible>(respond(&registry, &request)) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
                if let Err(e) = served {
                    debug!(%remote, error = %e, "metrics connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

/// The answer to one request.
fn respond(registry: &Registry, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; try /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match crate::encode(registry) {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
            );
            response
        }
        Err(e) => {
            warn!(error = %e, "encoding the metrics failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")
        }
    }
}
