//! Extractors whose rejections are [`ApiError`]s, so malformed requests get the same
//! `{"error": …}` shape as every other failure.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::auth::Refusal;
use crate::error::ApiError;
use crate::limits::Publisher;
use crate::state::AppState;

/// A JSON body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(super) struct ApiJson<T>(pub T);

/// A body in JSON or `application/x-www-form-urlencoded`, chosen by `Content-Type`.
#[derive(Debug)]
pub(super) struct JsonOrForm<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrForm<T>
where
    T: DeserializeOwned + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type =
            request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
        let essence =
            content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-www-form-urlencoded" => Ok(Self(form_body(request, state).await?)),
            "application/json" => Ok(Self(json_body(request, state).await?)),
            _ => Err(ApiError::UnsupportedMediaType(
                "send the body as application/json or application/x-www-form-urlencoded".to_owned(),
            )),
        }
    }
}

/// Parses a form body as browsers and HTML forms send it, so that a plain `<form>`
/// works as its author expects:
///
/// - a field left blank is absent (a form sends every input, filled or not: a
///   target picker with three inputs sends `client_id=&topic=&broadcast=true`);
/// - a field given twice with one value counts once; given with different values it
///   is refused (which would the author mean?), except for a checkbox behind its
///   hidden default (`broadcast=false&broadcast=on`, as Rails' `check_box` writes
///   it), where, as in Rails, PHP and Django, the last one wins.
async fn form_body<T, S>(request: Request, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let body = bytes::Bytes::from_request(request, state).await?;
    let fields = form_fields(&body)?;
    serde_urlencoded::from_str(&fields)
        .map_err(|error| ApiError::BadRequest(format!("invalid form body: {error}")))
}

/// The form's fields after the rules of [`form_body`], encoded again.
fn form_fields(body: &[u8]) -> Result<String, ApiError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if value.trim().is_empty() {
            continue;
        }
        match fields.iter_mut().find(|(known, _)| *known == name) {
            None => fields.push((name.into_owned(), value.into_owned())),
            Some((_, earlier)) if *earlier == value => {}
            Some((_, earlier))
                if checkbox_value(earlier).is_some() && checkbox_value(&value).is_some() =>
            {
                *earlier = value.into_owned();
            }
            Some(_) => {
                return Err(ApiError::BadRequest(format!(
                    "{name} is given twice with different values; give it once"
                )));
            }
        }
    }
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    encoded.extend_pairs(&fields);
    Ok(encoded.finish())
}

/// A checkbox's value as a boolean: `on` (what a checked box sends by default),
/// `true`, `1`, `yes`; `off`, `false`, `0`, `no` (hidden defaults). Case-insensitive.
pub(super) fn checkbox_value(value: &str) -> Option<bool> {
    const CHECKED: [&str; 4] = ["on", "true", "1", "yes"];
    const UNCHECKED: [&str; 4] = ["off", "false", "0", "no"];
    let value = value.trim();
    if CHECKED.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Some(true)
    } else if UNCHECKED.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Some(false)
    } else {
        None
    }
}

/// Parses a body already known to be JSON straight from its bytes.
///
/// Not through `axum::Json`, which checks the content type a second time and tracks
/// the path of every value it parses (`serde_path_to_error`): together a tenth of a
/// push's time in the server, before its frame is written. Only a body that does not
/// parse is read again by `axum::Json`, to say where it went wrong in its words.
async fn json_body<T, S>(request: Request, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let body = bytes::Bytes::from_request(request, state).await?;
    serde_json::from_slice(&body).or_else(|_| {
        let axum::Json(value) = axum::Json::<T>::from_bytes(&body)?;
        Ok(value)
    })
}

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(super) struct ApiQuery<T>(pub T);

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(super) struct ApiPath<T>(pub T);

/// A request from a publisher: with publish keys configured, one of them was given
/// (`Authorization: Bearer KEY`); refused 401 without a key, 403 with another. Every
/// route that writes (pushes, task updates, disconnects) or lists who is connected
/// takes one, so the route table says which routes need a key. Holds the publisher,
/// as the push rate counts it: its key, or its address when no keys are configured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Publishing(pub Publisher);

impl FromRequestParts<AppState> for Publishing {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        match state.publish_keys.check(&parts.headers) {
            Ok(Some(key)) => Ok(Self(Publisher::Key(key))),
            Ok(None) => {
                let Ok(Peer(address)) = Peer::from_request_parts(parts, state).await;
                Ok(Self(Publisher::Address(address)))
            }
            Err(Refusal::Missing) => Err(ApiError::Unauthorized(
                "a publish key is required: send Authorization: Bearer <key>".to_owned(),
            )),
            Err(Refusal::Wrong) => {
                Err(ApiError::Forbidden("this publish key is not accepted".to_owned()))
            }
        }
    }
}

/// The address of the client the request comes from: the connection's peer, or,
/// from a trusted proxy, the client it names (see [`crate::forwarded`]). Unspecified
/// when the server was not started with connection info, as in router-level tests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub std::net::IpAddr);

impl FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<crate::net::PeerAddr>>();
        let peer = info.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |info| info.0.0.ip());
        Ok(Self(state.trusted_proxies.client_address(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Result<String, ApiError> {
        form_fields(body.as_bytes())
    }

    #[test]
    fn blank_form_fields_are_absent() {
        assert_eq!(fields("client_id=&topic=+&broadcast=true&event=").unwrap(), "broadcast=true");
        assert_eq!(fields("message=hi+there").unwrap(), "message=hi+there");
    }

    #[test]
    fn repeated_form_fields_must_agree_unless_they_are_a_checkbox() {
        assert_eq!(fields("topic=a&topic=a").unwrap(), "topic=a");
        assert!(fields("client_id=a&client_id=b").is_err());
        assert_eq!(fields("broadcast=false&broadcast=on").unwrap(), "broadcast=on");
        assert_eq!(fields("broadcast=0&broadcast=").unwrap(), "broadcast=0");
    }

    #[test]
    fn checkbox_values_are_the_words_forms_send() {
        for word in ["on", "ON", "true", "1", "yes"] {
            assert_eq!(checkbox_value(word), Some(true), "{word}");
        }
        for word in ["off", "false", "0", "No"] {
            assert_eq!(checkbox_value(word), Some(false), "{word}");
        }
        assert_eq!(checkbox_value("maybe"), None);
    }
}
