//! `GET /clients`: who is connected; `DELETE /clients/ID`: close a client's streams.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{ApiPath, Publishing};
use crate::error::ApiError;
use crate::hub::types::ClientId;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/clients", get(clients))
        .route("/clients/{id}", axum::routing::delete(disconnect))
}

async fn clients(State(state): State<AppState>, _: Publishing) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"clients": state.hub.clients().await?})))
}

/// Closes every stream of one client, an operator's tool: the browser reconnects by
/// itself and resumes from its last event id.
async fn disconnect(
    State(state): State<AppState>,
    _: Publishing,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let client: ClientId = id.parse()?;
    match state.hub.disconnect_client(&client).await? {
        0 => Err(ApiError::NotFound(format!("client {client} has no open stream"))),
        closed => Ok(Json(json!({"client_id": client, "disconnected": closed}))),
    }
}
