//! `GET /healthz` and `GET /metrics`, for load balancers and Prometheus.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::hub::{HealthReport, HealthStatus};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics))
}

/// Healthy while the node takes streams and messages: 503 and `degraded` when its
/// broker cannot be reached (shutdown answers 503 before this handler runs), so a
/// load balancer sends new clients elsewhere.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let report = state.hub.health().await;
    let status = if report.status == HealthStatus::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// The metrics in the OpenMetrics text format. A scraper that asks for it (Prometheus
/// sends `Accept: application/openmetrics-text…`) gets that content type; anyone else
/// (`curl`, older scrapers) gets `text/plain; version=0.0.4`, whose parsers read the
/// same lines (`# UNIT` and `# EOF` are comments to them).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let asks_for_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let content_type = if asks_for_openmetrics {
        crate::metrics::CONTENT_TYPE
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], state.hub.render_metrics())
}
