//! The operator's HTTP endpoint: `/metrics`, `/healthz` and `/readyz` (both: the process
//! answers; a standby waiting for the lease is ready too).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;

#[derive(Clone)]
pub struct ServerState {
    pub metrics: Arc<Metrics>,
}

pub async fn serve(listener: tokio::net::TcpListener, state: ServerState) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /metrics, /healthz, /readyz");
    }
    axum::serve(listener, app).await
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Ready as soon as it serves: the operator has its client by then, and a standby is ready to
/// take the lease over.
async fn readyz() -> &'static str {
    "ready"
}
