//! CORS: which other origins' pages may call the API from a browser.
//!
//! Listed origins get credentials (the subscriber cookie travels with EventSource's
//! `withCredentials` and with `fetch(…, {credentials: "include"})`); `*` allows any
//! origin without credentials, as the CORS rules require. No origin configured: no
//! CORS headers, so browsers keep other origins out.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `origins` (none: `None`).
///
/// # Errors
/// When `*` is mixed with named origins, or an origin is not a valid header value.
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            HeaderName::from_static("last-event-id"),
        ])
        // What a client must read beyond the CORS-safelisted headers: when to retry
        // after a 429 or 503, why a 401 was refused, where a created task lives.
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::LOCATION])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|origin| origin == "*") {
        if origins.len() > 1 {
            return Err("--cors-origin '*' cannot be combined with named origins".to_owned());
        }
        return Ok(Some(base.allow_origin(AllowOrigin::any())));
    }
    let origins = origins
        .iter()
        .map(|origin| HeaderValue::from_str(origin).map_err(|_| format!("invalid origin {origin}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(base.allow_origin(AllowOrigin::list(origins)).allow_credentials(true)))
}
