//! The accept loop: HTTP/1 connections with a cap on how many are open, a
//! deadline for a request's headers (a client sending one header every few
//! seconds is cut off) and one for the whole request, and the peer address
//! handed to handlers (login throttling is per client).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service as _;

/// Bounds on what one client can hold open.
#[derive(Debug, Clone)]
pub struct WebLimits {
    /// Time allowed to send a request's headers; also how long an idle
    /// kept-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request, body and answer included (408 after).
    pub request_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for WebLimits {
    fn default() -> Self {
        // The request deadline leaves room for a token exchange through a
        // plugin (its own deadline is 30 s).
        WebLimits { header_read_timeout: Duration::from_secs(10), request_timeout: Duration::from_secs(60), max_connections: 256 }
    }
}

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, limits: WebLimits) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let router = router.layer(axum::middleware::from_fn_with_state(limits.request_timeout, request_deadline));
    loop {
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let mut router = router.clone();
                async move { router.call(request.map(axum::body::Body::new)).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}

async fn request_deadline(
    axum::extract::State(deadline): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, Infallible> {
    Ok(match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "the request took too long; try again").into_response(),
    })
}
