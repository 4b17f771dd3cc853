//! Operations: `GET /livez` and `GET /readyz` for orchestrators' probes, `GET /healthz`
//! for load balancers, `GET /metrics` for Prometheus.

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

/// The probes, which must answer while the node drains (the API's shutdown check does
/// not apply to them): a liveness probe that failed during a drain would have the node
/// killed before its streams moved away.
pub(super) fn probes() -> Router<AppState> {
    Router::new().route("/livez", get(livez)).route("/readyz", get(readyz))
}

/// Liveness: the process serves requests. Always 200 when answered at all; neither a
/// drain nor an unreachable Redis is a reason to restart the process (restarting every
/// node on a Redis blip would turn it into an outage).
async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: whether the node may take new streams. 503 while it drains (after
/// SIGTERM) and while its broker cannot be reached, so that a load balancer or a
/// Kubernetes Service sends new clients elsewhere; 200 otherwise.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if state.hub.is_shutting_down() {
        let body = serde_json::json!({"status": "draining"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let report = state.hub.health().await;
    match report.status {
        HealthStatus::Ok => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        HealthStatus::Degraded => {
            let body = serde_json::json!({"status": "degraded", "error": report.error});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
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
