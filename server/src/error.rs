//! One error type for the HTTP API, answered as `{"error": "…"}` with the status the
//! contract gives it. Extractor rejections are converted too, so even a malformed
//! request gets the same shape. Client mistakes are not logged; the detail of a
//! server-side failure is logged and never sent.

use axum::Json;
use axum::extract::rejection::{
    BytesRejection, FormRejection, JsonRejection, PathRejection, QueryRejection,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::TokenRefusal;
use crate::hub::jobs::JobError;
use crate::hub::types::InvalidValue;
use crate::hub::{HubError, Unavailable};

/// Everything the API can answer with other than success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule.
    BadRequest(String),
    /// 401: credentials are needed and none were given.
    Unauthorized(String),
    /// 403: the credentials given do not allow this.
    Forbidden(String),
    /// 404: no such resource.
    NotFound(String),
    /// 405: the path exists, the method does not; the text says what to do instead.
    MethodNotAllowed(String),
    /// 409: the request conflicts with the resource's state.
    Conflict(String),
    /// 413: a body or message over its limit.
    PayloadTooLarge(String),
    /// 415: a body in a format the endpoint does not read.
    UnsupportedMediaType(String),
    /// 429: a limit on how much the node holds.
    TooManyRequests(String),
    /// 503: the node is shutting down.
    ShuttingDown,
    /// 503: the broker the node depends on cannot be reached. The answer says so
    /// without the cause; the cause goes to the log (see [`HiddenCause`]).
    Unavailable(Unavailable),
    /// A request the connection refused for its framing, body or expectations
    /// (400, 408, 413, 417; see [`crate::net::Refusal`]).
    Refused(StatusCode, String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::ShuttingDown | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Refused(status, _) => *status,
        }
    }

    /// Maps a body rejection by its status, keeping axum's explanation.
    fn from_body_rejection(status: StatusCode, text: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("request body is too large".to_owned())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(text),
            _ => Self::BadRequest(text),
        }
    }
}

impl ApiError {
    /// The response, with a `Retry-After` of `wait` (rounded up to whole seconds).
    pub fn with_retry_after(self, wait: std::time::Duration) -> Response {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = self.into_response();
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(text)
            | Self::Unauthorized(text)
            | Self::Forbidden(text)
            | Self::NotFound(text)
            | Self::Conflict(text)
            | Self::PayloadTooLarge(text)
            | Self::UnsupportedMediaType(text)
            | Self::TooManyRequests(text)
            | Self::MethodNotAllowed(text)
            | Self::Refused(_, text) => f.write_str(text),
            Self::Unavailable(unavailable) => unavailable.fmt(f),
            Self::ShuttingDown => HubError::ShuttingDown.fmt(f),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), Json(json!({"error": self.to_string()}))).into_response();
        match self {
            Self::Unauthorized(_) => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"herald\""),
                );
            }
            Self::Unavailable(unavailable) if unavailable.hides_cause() => {
                response.extensions_mut().insert(HiddenCause(unavailable.cause().to_owned()));
            }
            _ => {}
        }
        response
    }
}

/// What went wrong behind a 5xx answer that does not say it (an OS error, a Redis
/// script error): carried on the response for the API's middleware, which logs it
/// with the request's method and path.
#[derive(Debug, Clone)]
pub struct HiddenCause(pub String);

impl From<&crate::net::Refusal> for ApiError {
    fn from(refusal: &crate::net::Refusal) -> Self {
        Self::Refused(refusal.status, refusal.message.to_owned())
    }
}

/// The answer to a handler that panicked (a bug, never a client's doing): a 500
/// that says nothing of it; the panic's message goes to the log.
#[allow(clippy::needless_pass_by_value)] // the shape tower-http's CatchPanicLayer calls
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!("a request handler panicked: {message}");
    let body = Json(json!({"error": "internal error; the server's log says more"}));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::from_body_rejection(rejection.status(), rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::from_body_rejection(rejection.status(), rejection.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        Self::from_body_rejection(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<InvalidValue> for ApiError {
    fn from(invalid: InvalidValue) -> Self {
        Self::BadRequest(invalid.to_string())
    }
}

impl From<HubError> for ApiError {
    fn from(error: HubError) -> Self {
        match error {
            HubError::ShuttingDown => Self::ShuttingDown,
            HubError::Unavailable(unavailable) => Self::Unavailable(unavailable),
        }
    }
}

impl From<TokenRefusal> for ApiError {
    fn from(refusal: TokenRefusal) -> Self {
        if refusal.is_unauthenticated() {
            Self::Unauthorized(refusal.to_string())
        } else {
            Self::Forbidden(refusal.to_string())
        }
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        let text = error.to_string();
        match error {
            JobError::NotFound => Self::NotFound(text),
            JobError::AlreadyFinished => Self::Conflict(text),
            JobError::StepOutOfRange { .. } => Self::BadRequest(text),
            JobError::TooMany => Self::TooManyRequests(text),
            JobError::ShuttingDown => Self::ShuttingDown,
            JobError::Unavailable(unavailable) => Self::Unavailable(unavailable),
        }
    }
}
