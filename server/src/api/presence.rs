//! `GET /clients`: who is connected.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/clients", get(clients))
}

async fn clients(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"clients": state.hub.clients()}))
}
