//! `GET /sse`: a client's long-lived event stream.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;

use super::event_stream_response;
use crate::error::ApiError;
use crate::hub::types::{ClientId, Topic};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/sse", get(subscribe))
}

async fn subscribe(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(
        query.as_deref().unwrap_or(""),
        state.config.max_topics as usize,
    )?;
    let subscription = state.hub.subscribe(query.client_id, query.topics)?;
    Ok(event_stream_response(
        subscription,
        state.config.stream_options(),
    ))
}

/// `client_id` (once), `topic` (any number of times); other parameters are ignored so
/// that pages may add their own (cache busters, say).
#[derive(Debug)]
struct SubscribeQuery {
    client_id: ClientId,
    topics: Vec<Topic>,
}

impl SubscribeQuery {
    fn parse(query: &str, max_topics: usize) -> Result<Self, ApiError> {
        let mut client_id = None;
        let mut topics = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "client_id" if client_id.is_some() => {
                    return Err(ApiError::BadRequest(
                        "client_id must be given once".to_owned(),
                    ));
                }
                "client_id" => client_id = Some(value.parse::<ClientId>()?),
                "topic" => topics.push(value.parse::<Topic>()?),
                _ => {}
            }
        }
        if topics.len() > max_topics {
            return Err(ApiError::BadRequest(format!(
                "at most {max_topics} topics per connection"
            )));
        }
        let client_id =
            client_id.ok_or_else(|| ApiError::BadRequest("client_id is required".to_owned()))?;
        Ok(Self { client_id, topics })
    }
}
