//! Task streams over HTTP: create a task, drive it from any worker, watch it.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, ApiPath, ApiQuery, Peer, Publishing};
use super::resume::{QueryPosition, resume_from};
use super::{admit, event_stream_response};
use crate::auth::{Claims, TokenRefusal};
use crate::error::ApiError;
use crate::hub::jobs::{JobError, JobSnapshot, Outcome, Watch};
use crate::hub::types::JobId;
use crate::state::AppState;

/// Longest task title, in bytes.
const MAX_TITLE_BYTES: usize = 1024;
/// Most steps a task may have; large enough for any progress bar.
const MAX_TOTAL: u64 = 1_000_000_000;
/// Bounds of the demo task, so that a request cannot park a task for days.
const MAX_DEMO_STEPS: u64 = 1000;
const MAX_DEMO_INTERVAL_MS: u64 = 60_000;

/// The task routes; with `demo`, `POST /jobs/demo` too (the web app's button).
pub(super) fn routes(demo_on: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/jobs", post(create))
        .route("/jobs/{id}", get(snapshot))
        .route("/jobs/{id}/progress", post(progress))
        .route("/jobs/{id}/finish", post(finish))
        .route("/jobs/{id}/events", get(events));
    if demo_on {
        router.route("/jobs/demo", post(demo))
    } else {
        router.route("/jobs/demo", post(demo_off))
    }
}

/// `POST /jobs/demo` with `--ui off`: there is no demo task (rather than a 405 from
/// `/jobs/{id}`, which takes only GET).
async fn demo_off(_: Publishing) -> ApiError {
    ApiError::NotFound("the demo task is served with the web app only (--ui on)".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    title: String,
    total: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoRequest {
    #[serde(default = "default_demo_steps")]
    steps: u64,
    #[serde(default = "default_demo_interval")]
    interval_ms: u64,
}

fn default_demo_steps() -> u64 {
    10
}

fn default_demo_interval() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressRequest {
    step: u64,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishRequest {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// The stream's query: a token, and the last event id under either name a client
/// may use (see [`super::resume`]).
#[derive(Debug, Deserialize)]
struct EventsQuery {
    last_event_id: Option<String>,
    #[serde(rename = "lastEventId")]
    polyfill_last_event_id: Option<String>,
    token: Option<String>,
}

/// The task id in the path. One that could not name a task (not letters and digits)
/// is answered like an unknown one: 404.
fn task_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse().map_err(|_| JobError::NotFound.into())
}

/// With subscriber tokens on, a task's state and stream need a token that names it.
fn authorize_watcher(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    id: &JobId,
) -> Result<Option<Claims>, ApiError> {
    let Some(auth) = &state.subscribers else { return Ok(None) };
    let claims = auth.authenticate(headers, query_token)?;
    if !claims.allows_job(id.as_str()) {
        return Err(TokenRefusal::JobNotAllowed.into());
    }
    Ok(Some(claims))
}

async fn create(
    State(state): State<AppState>,
    _: Publishing,
    ApiJson(request): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    if request.title.len() > MAX_TITLE_BYTES {
        return Err(ApiError::BadRequest(format!("title must be at most {MAX_TITLE_BYTES} bytes")));
    }
    if !(1..=MAX_TOTAL).contains(&request.total) {
        return Err(ApiError::BadRequest(format!("total must be 1 to {MAX_TOTAL}")));
    }
    let id = state.hub.jobs().create(request.title, request.total).await?;
    Ok(created(&id))
}

async fn demo(
    State(state): State<AppState>,
    _: Publishing,
    ApiJson(request): ApiJson<DemoRequest>,
) -> Result<Response, ApiError> {
    if !(1..=MAX_DEMO_STEPS).contains(&request.steps) {
        return Err(ApiError::BadRequest(format!("steps must be 1 to {MAX_DEMO_STEPS}")));
    }
    if request.interval_ms > MAX_DEMO_INTERVAL_MS {
        return Err(ApiError::BadRequest(format!(
            "interval_ms must be at most {MAX_DEMO_INTERVAL_MS}"
        )));
    }
    let id = state
        .hub
        .jobs()
        .start_demo(request.steps, Duration::from_millis(request.interval_ms))
        .await?;
    Ok(created(&id))
}

/// `201 Created` with where the task and its event stream live.
fn created(id: &JobId) -> Response {
    let location = format!("/jobs/{id}");
    let body = json!({"id": id, "events": format!("{location}/events")});
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response()
}

async fn snapshot(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Json<JobSnapshot>, ApiError> {
    let id = task_id(&id)?;
    authorize_watcher(&state, &headers, query.token.as_deref(), &id)?;
    Ok(Json(state.hub.jobs().snapshot(&id).await?))
}

async fn progress(
    State(state): State<AppState>,
    _: Publishing,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ProgressRequest>,
) -> Result<Json<JobSnapshot>, ApiError> {
    let id = task_id(&id)?;
    let limit = state.config.max_message_bytes as usize;
    if request.message.as_ref().is_some_and(|message| message.len() > limit) {
        return Err(ApiError::PayloadTooLarge(format!("message must be at most {limit} bytes")));
    }
    let jobs = state.hub.jobs();
    jobs.progress(&id, request.step, request.message).await?;
    Ok(Json(jobs.snapshot(&id).await?))
}

async fn finish(
    State(state): State<AppState>,
    _: Publishing,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<FinishRequest>,
) -> Result<Json<JobSnapshot>, ApiError> {
    let id = task_id(&id)?;
    let outcome = match request {
        FinishRequest { result: Some(_), error: Some(_) } => {
            return Err(ApiError::BadRequest("give either result or error, not both".to_owned()));
        }
        FinishRequest { error: Some(error), .. } => Outcome::Error(error),
        FinishRequest { result, .. } => Outcome::Result(result.unwrap_or(Value::Null)),
    };
    let size = match &outcome {
        Outcome::Result(result) => result.to_string().len(),
        Outcome::Error(error) => error.len(),
    };
    let limit = state.config.max_message_bytes as usize;
    if size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "result or error must be at most {limit} bytes"
        )));
    }
    let jobs = state.hub.jobs();
    jobs.finish(&id, outcome).await?;
    Ok(Json(jobs.snapshot(&id).await?))
}

/// The task's events: replayed, then live, then the response ends after `done`. A
/// reconnect that already saw `done` gets 204, which stops EventSource for good.
async fn events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    Peer(address): Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = task_id(&id)?;
    let claims = authorize_watcher(&state, &headers, query.token.as_deref(), &id)?;
    let expires_in =
        state.subscribers.as_ref().zip(claims).map(|(auth, claims)| auth.expires_in(&claims));
    let options = state.config.stream_options().expiring(expires_in);
    let position = QueryPosition {
        last_event_id: query.last_event_id,
        polyfill: query.polyfill_last_event_id,
    };
    let last_seen = resume_from(&headers, &position)?;
    Ok(match state.hub.jobs().watch(&id, last_seen).await? {
        Watch::Stream(subscription) => {
            event_stream_response(subscription, options, admit(&state, address)?)
        }
        Watch::AlreadyFinished => StatusCode::NO_CONTENT.into_response(),
    })
}
