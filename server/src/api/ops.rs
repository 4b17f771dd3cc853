//! `GET /healthz` and `GET /metrics`, for load balancers and Prometheus.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::hub::HealthReport;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics))
}

/// Healthy while the node takes streams and messages: 503 and `degraded` when its
/// broker cannot be reached (shutdown answers 503 before this handler runs), so a
/// load balancer sends new clients elsewhere.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let report = state.hub.health().await;
    let status =
        if report.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.hub.render_metrics(),
    )
}
