//! `GET /healthz` and `GET /metrics`, for load balancers and Prometheus.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics))
}

/// Healthy while the node takes streams and messages (shutdown answers 503 before
/// this handler runs).
async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "connections": state.hub.metrics().open_connections()}))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.hub.render_metrics(),
    )
}
