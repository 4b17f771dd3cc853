//! Subscriber tokens: a JWT, signed by the application's backend, that says which
//! client id a browser may listen as (`sub`), which topics it may join (`topics`),
//! which task streams it may watch (`jobs`), and until when (`exp`).
//!
//! EventSource cannot set headers, so a browser's token normally travels in an
//! HttpOnly cookie the backend sets; non-browser clients send `Authorization: Bearer`;
//! a `token` query parameter is accepted only when enabled, for short-lived tokens
//! (query strings end up in proxies' logs; Herald never logs them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Secret, bearer};

/// The name of the cookie a browser's token is read from.
pub const COOKIE: &str = "herald_token";

/// What a subscriber token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The client id the holder may listen as.
    pub sub: String,
    /// Topics the holder may join; `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Task ids whose streams the holder may watch; `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// Whether the token lets its holder join `topic`.
    pub fn allows_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|allowed| allowed == "*" || allowed == topic)
    }

    /// Whether the token lets its holder watch task `id`.
    pub fn allows_job(&self, id: &str) -> bool {
        self.jobs.iter().any(|allowed| allowed == "*" || allowed == id)
    }

    /// How long until the token expires (zero if it has).
    pub fn remaining(&self) -> Duration {
        let expiry = UNIX_EPOCH + Duration::from_secs(self.exp);
        expiry.duration_since(SystemTime::now()).unwrap_or_default()
    }
}

/// Why a subscriber was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No token anywhere it may be (401).
    Missing,
    /// A token in the query string, which is not enabled (401).
    QueryNotAllowed,
    /// Not a token this node accepts: malformed, wrongly signed, wrong algorithm (401).
    Invalid,
    /// A valid token past its expiry (401).
    Expired,
    /// A valid token for another client id (403).
    WrongClient,
    /// A valid token that does not list this topic (403).
    TopicNotAllowed(String),
    /// A valid token that does not list this task (403).
    JobNotAllowed,
}

impl TokenRefusal {
    /// Whether the client must authenticate (401), as opposed to being forbidden (403).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::Missing | Self::QueryNotAllowed | Self::Invalid | Self::Expired)
    }
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(
                f,
                "a subscriber token is required (cookie {COOKIE}, or Authorization: Bearer)"
            ),
            Self::QueryNotAllowed => f.write_str("tokens in the query string are not enabled"),
            Self::Invalid => f.write_str("the subscriber token is not valid"),
            Self::Expired => f.write_str("the subscriber token has expired"),
            Self::WrongClient => f.write_str("the subscriber token is for another client_id"),
            Self::TopicNotAllowed(topic) => {
                write!(f, "the subscriber token does not allow topic {topic}")
            }
            Self::JobNotAllowed => f.write_str("the subscriber token does not allow this task"),
        }
    }
}

impl std::error::Error for TokenRefusal {}

/// Checks subscriber tokens.
#[derive(Clone)]
pub struct SubscriberAuth {
    key: DecodingKey,
    validation: Validation,
    allow_query: bool,
}

impl std::fmt::Debug for SubscriberAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberAuth")
            .field("algorithms", &self.validation.algorithms)
            .field("allow_query", &self.allow_query)
            .finish_non_exhaustive()
    }
}

impl SubscriberAuth {
    /// Tokens signed with HS256 and `secret`.
    pub fn hmac(secret: &Secret, allow_query: bool) -> Self {
        Self::with_key(
            DecodingKey::from_secret(secret.expose().as_bytes()),
            Algorithm::HS256,
            allow_query,
        )
    }

    /// Tokens signed with the private half of `pem`: an RSA (RS256) or P-256 (ES256)
    /// public key.
    ///
    /// # Errors
    /// When `pem` is neither.
    pub fn public_key(pem: &[u8], allow_query: bool) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with_key(key, Algorithm::RS256, allow_query));
        }
        DecodingKey::from_ec_pem(pem)
            .map(|key| Self::with_key(key, Algorithm::ES256, allow_query))
            .map_err(|_| "not a PEM RSA or EC (P-256) public key".to_owned())
    }

    fn with_key(key: DecodingKey, algorithm: Algorithm, allow_query: bool) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { key, validation, allow_query }
    }

    /// The token presented with a request: the `Authorization` header, else the
    /// cookie, else (when enabled) the `token` query parameter.
    ///
    /// # Errors
    /// [`TokenRefusal::Missing`], or [`TokenRefusal::QueryNotAllowed`].
    pub fn find<'a>(
        &self,
        headers: &'a HeaderMap,
        query_token: Option<&'a str>,
    ) -> Result<&'a str, TokenRefusal> {
        if let Some(token) = bearer(headers).or_else(|| cookie(headers, COOKIE)) {
            return Ok(token);
        }
        match query_token {
            Some(token) if self.allow_query => Ok(token),
            Some(_) => Err(TokenRefusal::QueryNotAllowed),
            None => Err(TokenRefusal::Missing),
        }
    }

    /// The claims of a valid, unexpired token.
    ///
    /// # Errors
    /// [`TokenRefusal::Expired`] or [`TokenRefusal::Invalid`].
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRefusal> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            // RFC 7519: the time must be *before* `exp` (the library allows the whole
            // second of `exp`), matching the moment an open stream ends.
            Ok(data) if data.claims.remaining().is_zero() => Err(TokenRefusal::Expired),
            Ok(data) => Ok(data.claims),
            Err(error) if *error.kind() == ErrorKind::ExpiredSignature => {
                Err(TokenRefusal::Expired)
            }
            Err(_) => Err(TokenRefusal::Invalid),
        }
    }

    /// Finds and verifies the request's token.
    ///
    /// # Errors
    /// As [`SubscriberAuth::find`] and [`SubscriberAuth::verify`].
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Claims, TokenRefusal> {
        self.verify(self.find(headers, query_token)?)
    }
}

/// Signs `claims` with HS256 and `secret`, as an application backend would.
///
/// # Errors
/// When the claims cannot be encoded (they always can).
pub fn mint(secret: &Secret, claims: &Claims) -> Result<String, String> {
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).map_err(|e| e.to_string())
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name && !value.is_empty()).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        "subscriber-secret-0123456789".parse().unwrap()
    }

    fn claims(seconds: u64) -> Claims {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        Claims { sub: "tab".into(), topics: vec!["news".into()], jobs: vec![], exp: now + seconds }
    }

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let auth = SubscriberAuth::hmac(&secret(), false);
        let token = mint(&secret(), &claims(60)).unwrap();
        let verified = auth.verify(&token).unwrap();
        assert_eq!(verified.sub, "tab");
        assert!(verified.allows_topic("news") && !verified.allows_topic("sport"));
        assert!(verified.remaining() > Duration::from_secs(50));
    }

    #[test]
    fn wrong_signatures_and_expired_tokens_are_refused() {
        let auth = SubscriberAuth::hmac(&secret(), false);
        let other: Secret = "another-secret-0123456789".parse().unwrap();
        assert_eq!(auth.verify(&mint(&other, &claims(60)).unwrap()), Err(TokenRefusal::Invalid));
        assert_eq!(auth.verify("not.a.token"), Err(TokenRefusal::Invalid));
        let mut expired = claims(0);
        expired.exp -= 10;
        assert_eq!(auth.verify(&mint(&secret(), &expired).unwrap()), Err(TokenRefusal::Expired));
    }

    #[test]
    fn tokens_are_found_in_header_cookie_and_only_if_enabled_the_query() {
        let mut headers = HeaderMap::new();
        let strict = SubscriberAuth::hmac(&secret(), false);
        let lenient = SubscriberAuth::hmac(&secret(), true);
        assert_eq!(strict.find(&headers, None), Err(TokenRefusal::Missing));
        assert_eq!(strict.find(&headers, Some("q")), Err(TokenRefusal::QueryNotAllowed));
        assert_eq!(lenient.find(&headers, Some("q")), Ok("q"));
        headers.insert(header::COOKIE, "theme=dark; herald_token=c; x=y".parse().unwrap());
        assert_eq!(strict.find(&headers, Some("q")), Ok("c"));
        headers.insert(header::AUTHORIZATION, "Bearer h".parse().unwrap());
        assert_eq!(strict.find(&headers, None), Ok("h"));
    }
}
