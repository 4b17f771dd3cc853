//! The HTTP API: thin handlers that parse requests into the hub's types, call the hub
//! and shape its answers. Every failure is an [`ApiError`](crate::error::ApiError).

pub mod client_script;
pub mod cors;
mod extract;
mod jobs;
mod message;
mod ops;
mod presence;
mod push;
mod resume;
mod subscribe;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, HiddenCause};
use crate::hub::Subscription;
use crate::limits::ConnectionPermit;
use crate::metrics::Limit;
use crate::sse;
use crate::state::AppState;
use crate::stream::{StreamOptions, event_stream};
use futures::StreamExt;

/// The API routes, without the web app.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(subscribe::routes())
        .merge(push::routes())
        .merge(jobs::routes(state.config.ui == crate::config::Switch::On))
        .merge(presence::routes())
        .merge(ops::routes())
        .merge(client_script::routes())
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed(
                "method not allowed on this path (see the Allow header)".to_owned(),
            )
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes as usize))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .merge(ops::probes())
}

/// The layers around every route, the web app's too: a request the connection
/// refused (its body too large or too slow, say; see [`crate::net::Refusal`]) is
/// answered as an API error, a handler that panics is answered 500 instead of
/// dropping the connection, and CORS, outermost, answers preflight requests before
/// any check and puts its headers on every answer, refusals included.
pub fn with_outer_layers(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let router = router
        .layer(middleware::from_fn(answer_refused))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(crate::error::panicked));
    match state.cors.clone() {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Answers a request the connection refused; passes every other one on.
async fn answer_refused(request: Request, next: Next) -> Response {
    match request.extensions().get::<crate::net::Refusal>() {
        Some(refusal) => ApiError::from(refusal).into_response(),
        None => next.run(request).await,
    }
}

/// What every API request passes: a node shutting down answers 503, so load
/// balancers and clients move on; refusals for size (the body limit answers before
/// any handler) are counted; the cause behind a 5xx that does not say it is logged
/// with the request. (Which routes need a publish key, and the push rate, the routes
/// say themselves: see [`extract::Publishing`].)
///
/// One middleware, not one per check: per request, every `from_fn` layer clones the
/// whole chain of services below it, and that was a quarter of a push's allocations.
async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.hub.is_shutting_down() {
        return ApiError::ShuttingDown.into_response();
    }
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        state.hub.metrics().limited(Limit::Size);
    }
    if let Some(HiddenCause(cause)) = response.extensions().get() {
        tracing::warn!(%method, path = uri.path(), status = response.status().as_u16(), "{cause}");
    }
    response
}

/// An event-stream response for `subscription`, with the headers that keep proxies
/// from buffering or transforming it.
/// `permit` holds the stream's place under the connection limits until it ends.
fn event_stream_response(
    subscription: Subscription,
    options: StreamOptions,
    permit: ConnectionPermit,
) -> Response {
    let frames = event_stream(subscription, options).map(move |frame| {
        let _held_while_streaming = &permit;
        frame
    });
    with_stream_headers(axum::body::Body::from_stream(frames))
}

/// A place under the connection limits for a stream from `address`.
fn admit(state: &AppState, address: std::net::IpAddr) -> Result<ConnectionPermit, ApiError> {
    state.connection_limits.acquire(address).map_err(|limit| {
        state.hub.metrics().limited(limit);
        ApiError::TooManyRequests(match limit {
            Limit::ConnectionsPerAddress => format!(
                "at most {} streams from one address; close one first",
                state.config.max_connections_per_ip
            ),
            _ => "this node holds as many streams as it may; retry on another".to_owned(),
        })
    })
}

/// A stream that ends at once, asking the client to come back after `retry`.
/// EventSource gives up for good on any status but 200, so this, not a 503, is how a
/// browser is told to retry while the broker it needs for its replay is unreachable.
fn retry_later_response(options: StreamOptions) -> Response {
    let retry = options.retry.as_millis().try_into().unwrap_or(u64::MAX);
    let mut body = sse::preamble(retry).to_vec();
    body.extend_from_slice(&sse::comment("broker unavailable; retry later"));
    with_stream_headers(axum::body::Body::from(body))
}

fn with_stream_headers(body: axum::body::Body) -> Response {
    let mut response = body.into_response();
    let headers: &mut HeaderMap = response.headers_mut();
    headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
