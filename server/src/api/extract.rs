//! Extractors whose rejections are [`ApiError`]s, so malformed requests get the same
//! `{"error": …}` shape as every other failure.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

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
            "application/x-www-form-urlencoded" => {
                let axum::Form(value) = axum::Form::<T>::from_request(request, state).await?;
                Ok(Self(value))
            }
            "application/json" => Ok(Self(json_body(request, state).await?)),
            _ => Err(ApiError::UnsupportedMediaType(
                "send the body as application/json or application/x-www-form-urlencoded".to_owned(),
            )),
        }
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

/// The address the request came from (unspecified when the server was not started
/// with connection info, as in router-level tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<crate::net::PeerAddr>>();
        Ok(Self(info.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |info| info.0.0.ip())))
    }
}
