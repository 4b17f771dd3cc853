//! `GET /client/herald.js`: the browser client of `clients/js/` (herald-client, an ES
//! module), served by every node at a stable path so that any page can import it from
//! the Herald it talks to, at the version that node speaks.

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// The module, as built into this binary.
const SCRIPT: &str = include_str!("../../../clients/js/herald.js");

/// Its path.
pub const PATH: &str = "/client/herald.js";

/// A validator for [`SCRIPT`]: a hash of its text, fixed for the binary's life.
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    SCRIPT.hash(&mut hasher);
    HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
        .unwrap_or(HeaderValue::from_static("\"herald\""))
});

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(script))
}

/// The module, with `304` for a page that has it already (RFC 9110 §13.1.2). Any
/// origin may load it (`Access-Control-Allow-Origin: *`: a module script from another
/// origin is fetched with CORS); an origin given to `--cors-origin` gets its own.
async fn script(request: HeaderMap) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| value.as_bytes() == ETAG.as_bytes() || value.as_bytes() == b"*");
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { SCRIPT.into_response() };
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, ETAG.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}
