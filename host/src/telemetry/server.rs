//! `GET /metrics` (Prometheus text format) and `GET /health`, on the
//! address `--metrics-addr` or `[telemetry] metrics_addr` names.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::{health, metrics};

/// Binds `addr` and serves on the process's runtime until it exits.
pub fn serve(addr: SocketAddr) -> Result<SocketAddr> {
    let listener = crate::aws::block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("listening for /metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(scrape)).route("/health", get(check));
    crate::aws::runtime().spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics server stopped: {e}");
        }
    });
    tracing::info!(address = %bound, "serving /metrics and /health");
    Ok(bound)
}

async fn scrape() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics().encode(),
    )
}

async fn check() -> impl IntoResponse {
    match health().check() {
        Ok(since) => (StatusCode::OK, format!("ok: last progress {:.1} s ago\n", since.as_secs_f64())),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}
