//! `POST /push`: send a message to one client, a topic or everyone.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::{JsonOrForm, Publishing, checkbox_value};
use super::message::Message;
use crate::error::ApiError;
use crate::hub::types::{EventName, Target};
use crate::metrics::Limit;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/push", post(push).fallback(how_to_push))
}

/// The answer to any other method on `/push` (a page that pushes with
/// `GET /push?client_id=…&message=…`, as some tutorials do): a 405 that says how to
/// push instead. A `GET` never pushes: it must be safe to repeat (RFC 9110 §9.2.1),
/// and browsers, proxies and crawlers repeat it.
async fn how_to_push() -> ApiError {
    ApiError::MethodNotAllowed(
        "push with POST /push, not with this method: send JSON (Content-Type: application/json) \
         {\"client_id\": \"alice\", \"message\": \"hi\"}, or form fields \
         (Content-Type: application/x-www-form-urlencoded) client_id|topic|broadcast, message, \
         event; for example: curl -d client_id=alice -d message=hi http://HOST/push"
            .to_owned(),
    )
}

/// A publisher (see [`Publishing`]) within its push rate (`--push-rate` pushes per
/// second, bursts of `--push-burst`): refused 429 with `Retry-After` beyond it.
struct WithinPushRate;

impl FromRequestParts<AppState> for WithinPushRate {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Publishing(publisher) = Publishing::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        state.push_rate.take(publisher).map_err(|wait| {
            state.hub.metrics().limited(Limit::PushRate);
            let text = format!(
                "more than {} pushes per second from this publisher; retry later",
                state.config.push_rate
            );
            ApiError::TooManyRequests(text).with_retry_after(wait)
        })?;
        Ok(Self)
    }
}

/// The request body, as JSON or form fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    client_id: Option<String>,
    topic: Option<String>,
    #[serde(default, deserialize_with = "checkbox")]
    broadcast: Option<bool>,
    message: Option<Message>,
    event: Option<String>,
}

/// `true`/`false`, or what a form's checkbox sends for it (`on`; see
/// [`checkbox_value`]).
fn checkbox<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Word(String),
    }
    match Option::<Flag>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Flag::Bool(flag)) => Ok(Some(flag)),
        Some(Flag::Word(word)) => checkbox_value(&word).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "broadcast must be true or false (or a checkbox's on), not {word:?}"
            ))
        }),
    }
}

#[derive(Debug, Serialize)]
struct PushResponse {
    id: String,
    delivered: usize,
}

async fn push(
    State(state): State<AppState>,
    _: WithinPushRate,
    JsonOrForm(request): JsonOrForm<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    let target = request.target()?;
    let event = request.event.as_deref().map(EventName::for_push).transpose()?;
    let Message(payload) = request.message.ok_or_else(|| {
        ApiError::BadRequest("message is required: a string or any JSON value".to_owned())
    })?;
    let limit = state.config.max_message_bytes as usize;
    if payload.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "message is {} bytes; the limit is {limit}",
            payload.len()
        )));
    }
    let published = state.hub.publish(&target, event.as_ref(), &payload).await?;
    Ok(Json(PushResponse { id: published.id.to_string(), delivered: published.delivered }))
}

impl PushRequest {
    /// The one target the request names.
    fn target(&self) -> Result<Target, ApiError> {
        let broadcast = self.broadcast == Some(true);
        let named = usize::from(self.client_id.is_some())
            + usize::from(self.topic.is_some())
            + usize::from(broadcast);
        if named != 1 {
            return Err(ApiError::BadRequest(format!(
                "name exactly one target (client_id, topic or \"broadcast\": true); this request names {named}"
            )));
        }
        Ok(match (&self.client_id, &self.topic) {
            (Some(client), _) => Target::Client(client.parse()?),
            (_, Some(topic)) => Target::Topic(topic.parse()?),
            _ => Target::Broadcast,
        })
    }
}
