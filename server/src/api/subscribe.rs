//! `GET /sse`: a client's long-lived event stream.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use super::extract::Peer;
use super::resume::{QueryPosition, resume_from};
use super::{admit, event_stream_response, retry_later_response};
use crate::auth::{Claims, SubscriberAuth, TokenRefusal};
use crate::error::ApiError;
use crate::hub::HubError;
use crate::hub::types::{ClientId, Topic};
use crate::metrics::Limit;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/sse", get(subscribe))
}

async fn subscribe(
    State(state): State<AppState>,
    Peer(address): Peer,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref().unwrap_or(""))?;
    let max_topics = state.config.max_topics as usize;
    if query.topics.len() > max_topics {
        state.hub.metrics().limited(Limit::Topics);
        return Err(ApiError::BadRequest(format!("at most {max_topics} topics per connection")));
    }
    let expires_in = match &state.subscribers {
        None => None,
        Some(auth) => Some(auth.expires_in(&query.authorize(auth, &headers)?)),
    };
    let resume_from = resume_from(&headers, &query.position)?;
    let options = state.config.stream_options().expiring(expires_in);
    let permit = admit(&state, address)?;
    match state.hub.subscribe(query.client_id, query.topics, resume_from).await {
        Ok(subscription) => Ok(event_stream_response(subscription, options, permit)),
        Err(HubError::Unavailable(error)) => {
            tracing::warn!(
                "cannot replay to a resuming client; asking it to retry: {}",
                error.cause()
            );
            Ok(retry_later_response(options))
        }
        Err(error) => Err(error.into()),
    }
}

/// `client_id` (once), `topic` (any number of times), `last_event_id` and its
/// polyfill's name `lastEventId` (each at most once, see [`super::resume`]); other
/// parameters are ignored so that pages may add their own (cache busters, say).
#[derive(Debug)]
struct SubscribeQuery {
    client_id: ClientId,
    topics: Vec<Topic>,
    position: QueryPosition,
    token: Option<String>,
}

impl SubscribeQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut client_id = None;
        let mut topics = Vec::new();
        let mut position = QueryPosition::default();
        let mut token = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "client_id" if client_id.is_some() => {
                    return Err(ApiError::BadRequest("client_id must be given once".to_owned()));
                }
                "client_id" => client_id = Some(value.parse::<ClientId>()?),
                "topic" => topics.push(value.parse::<Topic>()?),
                "token" => token = Some(value.into_owned()),
                _ => {
                    position.take(&key, &value)?;
                }
            }
        }
        let client_id =
            client_id.ok_or_else(|| ApiError::BadRequest("client_id is required".to_owned()))?;
        Ok(Self { client_id, topics, position, token })
    }

    /// The request's subscriber token, checked against what it asks for: this client
    /// id and every topic.
    fn authorize(&self, auth: &SubscriberAuth, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let claims = auth.authenticate(headers, self.token.as_deref())?;
        if claims.sub != self.client_id.as_str() {
            return Err(TokenRefusal::WrongClient.into());
        }
        if let Some(topic) = self.topics.iter().find(|topic| !claims.allows_topic(topic.as_str())) {
            return Err(TokenRefusal::TopicNotAllowed(topic.to_string()).into());
        }
        Ok(claims)
    }
}
