//! Where the page's files (`/pkg/herald.js`, `.wasm`, `.css`, the favicon) come from:
//! the binary itself, or the directory cargo-leptos built them into.
//!
//! A binary built with the `embed-site` feature (every `cargo leptos build`, so `make
//! run` and `make dist`) carries the site it was built with and serves it from any
//! working directory, with no other file: the page and its wasm always come from the
//! same build, so they hydrate. `LEPTOS_SITE_ROOT` (which `cargo leptos watch` and
//! `serve` set) overrides it with a directory, read at each request, for live
//! rebuilds. A binary built without the feature reads `LEPTOS_SITE_ROOT`, else
//! `target/site`.
//!
//! Embedded files are served with an `ETag` (their SHA-256) and `Cache-Control:
//! no-cache` (their names carry no hash, so a browser must ask again, and gets `304`
//! while they are unchanged); a precompressed copy (`.br`, `.gz`, written by `cargo
//! leptos build --precompress`) is sent to browsers that accept it (RFC 9110 §8.4).

use axum::extract::Request;
use axum::response::Response;

/// Where the page's files are served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteSource {
    /// From the binary.
    Embedded,
    /// From the directory in the Leptos options' `site_root`.
    Directory,
}

impl SiteSource {
    /// The binary's own site, unless `LEPTOS_SITE_ROOT` names a directory (or the
    /// binary was built without one).
    pub fn choose() -> Self {
        if cfg!(feature = "embed-site") && std::env::var_os("LEPTOS_SITE_ROOT").is_none() {
            Self::Embedded
        } else {
            Self::Directory
        }
    }
}

/// The embedded file `request` asks for, if the binary has one; `None` sends the
/// request on to the directory (and the app's 404 page).
pub fn embedded_file(request: &Request) -> Option<Response> {
    #[cfg(feature = "embed-site")]
    return embedded::respond(request);
    #[cfg(not(feature = "embed-site"))]
    {
        let _ = request;
        None
    }
}

#[cfg(feature = "embed-site")]
mod embedded {
    use std::borrow::Cow;
    use std::fmt::Write as _;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
    use axum::response::Response;
    use bytes::Bytes;
    use rust_embed::{Embed, EmbeddedFile};

    /// The site cargo-leptos built, as it was when this binary was compiled.
    #[derive(Embed)]
    #[folder = "$HERALD_SITE_DIR"]
    struct Site;

    /// Precompressed copies, best first: (content coding, file suffix).
    const CODINGS: [(&str, &str); 2] = [("br", ".br"), ("gzip", ".gz")];

    pub(super) fn respond(request: &Request) -> Option<Response> {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return None;
        }
        let path = request.uri().path().trim_start_matches('/');
        let file = Site::get(path)?;
        let content_type = HeaderValue::from_str(file.metadata.mimetype()).ok()?;
        let (coding, served) = CODINGS
            .iter()
            .filter(|(coding, _)| accepts(request.headers(), coding))
            .find_map(|(coding, suffix)| {
                Some((Some(*coding), Site::get(&format!("{path}{suffix}"))?))
            })
            .unwrap_or((None, file));
        let etag = etag(&served);
        let mut response = if fresh(request.headers(), &etag) {
            Response::builder().status(StatusCode::NOT_MODIFIED).body(Body::empty())
        } else {
            Response::builder()
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_LENGTH, served.data.len())
                .body(Body::from(bytes(served.data)))
        }
        .ok()?;
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if let Some(coding) = coding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        Some(response)
    }

    fn bytes(data: Cow<'static, [u8]>) -> Bytes {
        match data {
            Cow::Borrowed(data) => Bytes::from_static(data),
            Cow::Owned(data) => Bytes::from(data),
        }
    }

    /// A strong validator: the served bytes' SHA-256, in hex.
    fn etag(file: &EmbeddedFile) -> HeaderValue {
        let mut tag = String::with_capacity(66);
        tag.push('"');
        for byte in file.metadata.sha256_hash() {
            let _ = write!(tag, "{byte:02x}");
        }
        tag.push('"');
        HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
    }

    /// Whether `If-None-Match` names `etag` (or `*`), RFC 9110 §13.1.2.
    fn fresh(headers: &HeaderMap, etag: &HeaderValue) -> bool {
        let Ok(etag) = etag.to_str() else { return false };
        headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|value| {
            value
                .split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        })
    }

    /// Whether `Accept-Encoding` accepts `coding` (named, or `*`, with a weight above
    /// zero), RFC 9110 §12.5.3.
    pub(super) fn accepts(headers: &HeaderMap, coding: &str) -> bool {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|item| {
                let mut parts = item.split(';');
                let name = parts.next()?.trim();
                let weight = parts
                    .filter_map(|param| param.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((name, weight))
            })
            .any(|(name, weight)| {
                (name.eq_ignore_ascii_case(coding) || name == "*") && weight > 0.0
            })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn with(value: &str) -> HeaderMap {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            headers
        }

        #[test]
        fn a_coding_is_accepted_when_named_or_starred_with_a_weight() {
            assert!(accepts(&with("gzip, deflate, br, zstd"), "br"));
            assert!(accepts(&with("gzip;q=0.5"), "gzip"));
            assert!(accepts(&with("*"), "br"));
            assert!(!accepts(&with("gzip, br;q=0"), "br"));
            assert!(!accepts(&with("identity"), "gzip"));
            assert!(!accepts(&HeaderMap::new(), "gzip"));
        }
    }
}
