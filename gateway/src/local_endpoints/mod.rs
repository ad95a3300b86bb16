//! The plain-HTTP endpoints on `--metrics-listen`: Prometheus `/metrics` and readiness
//! `/readyz`, for a scraper or a probe on the gateway's own host or pod.
//!
//! Nothing here is authenticated, so the listener stays on loopback unless the user says
//! otherwise (`--metrics-insecure-listen`). Scrapers from elsewhere read the same
//! `/metrics` over the kubelet API (HTTPS, authenticated, `nodes/metrics`), as they read
//! a kubelet's; the pod's readiness probe runs `edge-gateway check-ready` inside the
//! container ([`check_ready`]).
//!
//! | module | what is there |
//! |---|---|
//! | [`check_ready`] | the client side: `edge-gateway check-ready` asks `/readyz` over loopback |

pub mod check_ready;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;

/// The content type of [`Metrics::render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The listen address is refused: beyond loopback without the explicit opt-in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--metrics-listen {0} is beyond loopback, and /metrics and /readyz on it are plain HTTP \
     without authentication. Scrape /metrics over the kubelet API instead (HTTPS on \
     --kubelet-listen, a bearer token allowed `get nodes/metrics`), keep --metrics-listen on \
     127.0.0.1, or add --metrics-insecure-listen if this network is trusted"
)]
pub struct BeyondLoopback(pub SocketAddr);

/// Loopback, or anything with the explicit opt-in.
pub fn check_listen(listen: SocketAddr, insecure_listen: bool) -> Result<(), BeyondLoopback> {
    if listen.ip().is_loopback() || insecure_listen {
        Ok(())
    } else {
        Err(BeyondLoopback(listen))
    }
}

/// `/metrics`: the whole registry as OpenMetrics text.
pub fn metrics_response(metrics: &Metrics) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}

/// `/readyz`: `200 ok`, or `503` naming what keeps the gateway from being ready.
pub fn readyz_response(health: &Health) -> Response {
    let problems = health.problems();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_owned()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

/// The two routes.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/readyz",
            get(move || async move { readyz_response(&health) }),
        )
        .route(
            "/metrics",
            get(move || async move { metrics_response(&metrics) }),
        )
}

/// Serves [`router`] on `listener` until cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    token: CancellationToken,
) {
    let _ = axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await;
}

#[cfg(test)]
mod tests;
