//! Subscriber tokens: a JWT, signed by the application's backend, that says which
//! client id a browser may listen as (`sub`), which topics it may join (`topics`),
//! which task streams it may watch (`jobs`), and until when (`exp`).
//!
//! EventSource cannot set headers, so a browser's token normally travels in an
//! HttpOnly cookie the backend sets; non-browser clients send `Authorization: Bearer`;
//! a `token` query parameter is accepted only when enabled, for short-lived tokens
//! (query strings end up in proxies' logs; Herald never logs them).
//!
//! Tokens may come from an identity provider: its registered claims (RFC 7519 §4.1:
//! `aud`, `iss`, `nbf`, `iat`) are accepted, and checked where [`TokenRules`] say so;
//! several keys (PEM files, a JWKS with `kid`s) verify at once, for key rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
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
    /// Expiry, in seconds since the Unix epoch (RFC 7519's NumericDate: a fraction
    /// is allowed, and dropped). Read as 0 when absent, so that the token is refused
    /// for the missing claim by name rather than as unreadable.
    #[serde(default, deserialize_with = "numeric_date")]
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
    /// A valid token used before its `nbf` (401).
    NotYetValid,
    /// A token for an audience this node is not (401).
    WrongAudience,
    /// A token from an issuer this node does not accept (401).
    WrongIssuer,
    /// A token without a claim this node requires, or with one it cannot read (401).
    MissingClaim(String),
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
        matches!(
            self,
            Self::Missing
                | Self::QueryNotAllowed
                | Self::Invalid
                | Self::Expired
                | Self::NotYetValid
                | Self::WrongAudience
                | Self::WrongIssuer
                | Self::MissingClaim(_)
        )
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
            Self::NotYetValid => f.write_str("the subscriber token is not valid yet (nbf)"),
            Self::WrongAudience => {
                f.write_str("the subscriber token is for another audience (aud)")
            }
            Self::WrongIssuer => f.write_str("the subscriber token is from another issuer (iss)"),
            Self::MissingClaim(claim) => {
                write!(f, "the subscriber token lacks a valid {claim} claim")
            }
            Self::WrongClient => f.write_str("the subscriber token is for another client_id"),
            Self::TopicNotAllowed(topic) => {
                write!(f, "the subscriber token does not allow topic {topic}")
            }
            Self::JobNotAllowed => f.write_str("the subscriber token does not allow this task"),
        }
    }
}

impl std::error::Error for TokenRefusal {}

/// Checks on a token's registered claims beyond its signature and `exp` (RFC 7519
/// §4.1), for tokens minted by an identity provider.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    /// Accepted `aud` values; a token must name one of them. Empty: `aud` is not
    /// checked (and a token that has one is not refused for it).
    pub audiences: Vec<String>,
    /// Accepted `iss` values. Empty: `iss` is not checked.
    pub issuers: Vec<String>,
    /// Clock skew allowed between the token's minter and this node. `None`: the
    /// default [`DEFAULT_NBF_LEEWAY`] for `nbf`, and none for `exp`; set, it applies
    /// to both.
    pub leeway: Option<Duration>,
}

/// The longest a token is taken to be valid for: far beyond any stream's life, and
/// short enough that adding it to a clock reading cannot overflow.
pub const LONGEST_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The clock skew allowed on `nbf` when none is configured: identity providers set
/// `nbf` to the moment they mint, and a node whose clock is a little behind would
/// otherwise refuse every fresh token.
pub const DEFAULT_NBF_LEEWAY: Duration = Duration::from_secs(5);

impl TokenRules {
    fn nbf_leeway(&self) -> Duration {
        self.leeway.unwrap_or(DEFAULT_NBF_LEEWAY)
    }

    fn exp_leeway(&self) -> Duration {
        self.leeway.unwrap_or_default()
    }
}

/// A key tokens may be signed with: an HMAC secret, a PEM public key, or one key of
/// a JWKS (RFC 7517).
#[derive(Clone)]
pub struct VerificationKey {
    /// The JWKS `kid`: a token whose header names a `kid` is checked only against
    /// keys with that `kid` (and keys that have none).
    kid: Option<String>,
    /// The JWKS `alg`, when the key is restricted to one algorithm.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("family", &self.key.family())
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// An HMAC secret (HS256, HS384, HS512).
    pub fn secret(secret: &Secret) -> Self {
        Self::unnamed(DecodingKey::from_secret(secret.expose().as_bytes()))
    }

    /// A PEM public key: RSA (RS256/384/512, PS256/384/512), EC P-256 or P-384
    /// (ES256, ES384), or Ed25519 (EdDSA).
    ///
    /// # Errors
    /// When `pem` is none of these.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map(Self::unnamed)
            .map_err(|_| "not a PEM RSA, EC (P-256, P-384) or Ed25519 public key".to_owned())
    }

    /// The signing keys of a JWKS document (`{"keys": [...]}`, as an identity
    /// provider publishes at its `jwks_uri`); keys marked for encryption
    /// (`"use": "enc"`) are left out.
    ///
    /// # Errors
    /// When the document is not a JWKS, a key cannot be used, or no key is left.
    pub fn from_jwks(document: &[u8]) -> Result<Vec<Self>, String> {
        let set: JwkSet = serde_json::from_slice(document)
            .map_err(|error| format!("not a JWKS document ({{\"keys\": [...]}}): {error}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let kid = jwk.common.key_id.clone();
            let named = kid.as_deref().unwrap_or("(no kid)");
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|error| format!("key {named} cannot be used: {error}"))?;
            let algorithm = jwk
                .common
                .key_algorithm
                .map(Algorithm::try_from)
                .transpose()
                .map_err(|_| format!("key {named} is not for signing"))?;
            keys.push(Self { kid, algorithm, key });
        }
        if keys.is_empty() {
            return Err("the JWKS holds no signing key".to_owned());
        }
        Ok(keys)
    }

    fn unnamed(key: DecodingKey) -> Self {
        Self { kid: None, algorithm: None, key }
    }

    /// Whether a token with this header may have been signed with this key.
    fn may_have_signed(&self, header: &jsonwebtoken::Header) -> bool {
        let kid_matches = match (&self.kid, &header.kid) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        kid_matches
            && self.key.family() == header.alg.family()
            && self.algorithm.is_none_or(|algorithm| algorithm == header.alg)
    }
}

/// Checks subscriber tokens.
#[derive(Clone, Debug)]
pub struct SubscriberAuth {
    keys: Vec<VerificationKey>,
    rules: TokenRules,
    allow_query: bool,
}

impl SubscriberAuth {
    /// Tokens signed with any of `keys` (several at once, so that keys can be rotated
    /// without refusing tokens signed with the old one), held to `rules`.
    pub fn new(keys: Vec<VerificationKey>, rules: TokenRules, allow_query: bool) -> Self {
        Self { keys, rules, allow_query }
    }

    /// Tokens signed with HS256 and `secret`, with the default rules.
    pub fn hmac(secret: &Secret, allow_query: bool) -> Self {
        Self::new(vec![VerificationKey::secret(secret)], TokenRules::default(), allow_query)
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

    /// The claims of a valid token: signed by one of the keys (the one its `kid`
    /// names, if it names one), within `nbf` and `exp` (with the allowed skew), for
    /// an accepted audience and issuer where those are configured.
    ///
    /// # Errors
    /// [`TokenRefusal::Invalid`] for a token no key verifies; otherwise the first
    /// claim that fails, as its own refusal.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRefusal::Invalid)?;
        if names_critical_extensions(token) {
            // RFC 7515 §4.1.11: extensions a recipient does not understand, and
            // Herald understands none, make the token invalid.
            return Err(TokenRefusal::Invalid);
        }
        let validation = self.validation(header.alg);
        for key in self.keys.iter().filter(|key| key.may_have_signed(&header)) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) if self.expires_in(&data.claims).is_zero() => {
                    return Err(TokenRefusal::Expired);
                }
                Ok(data) => return Ok(data.claims),
                // The signature is checked before any claim, so a refusal for a
                // claim means this key signed it: no other key can do better.
                Err(error) => {
                    if let Some(claim) = claim_refusal(error.kind()) {
                        return Err(claim);
                    }
                }
            }
        }
        Err(TokenRefusal::Invalid)
    }

    /// How long until `claims`' token expires, with the allowed skew (zero if it
    /// has). RFC 7519 §4.1.4: the time must be *before* `exp`; an open stream ends
    /// at that moment.
    /// A token valid for longer than [`LONGEST_LIFETIME`] (an `exp` far in the
    /// future, up to the largest number) is taken as valid for that long.
    pub fn expires_in(&self, claims: &Claims) -> Duration {
        let expiry = Duration::from_secs(claims.exp).saturating_add(self.rules.exp_leeway());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        expiry.saturating_sub(now).min(LONGEST_LIFETIME)
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

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // The library has one leeway for `exp` and `nbf`: it gets `nbf`'s, and
        // `exp` is checked again with its own in `verify`.
        validation.leeway = self.rules.nbf_leeway().max(self.rules.exp_leeway()).as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        validation.validate_aud = !self.rules.audiences.is_empty();
        if validation.validate_aud {
            validation.set_audience(&self.rules.audiences);
            required.push("aud");
        }
        if !self.rules.issuers.is_empty() {
            validation.set_issuer(&self.rules.issuers);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// Whether the token's header carries `crit` (RFC 7515 §4.1.11).
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = token.split('.').next() else { return false };
    let Ok(header) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&header)
        .is_ok_and(|header| header.get("crit").is_some())
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly with a fraction.
fn numeric_date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if seconds.is_finite() && seconds >= 0.0 {
        // Whole seconds, as the check on `exp` compares them.
        Ok(seconds.floor().min(u64::MAX as f64) as u64)
    } else {
        Err(serde::de::Error::custom("a NumericDate is a non-negative number of seconds"))
    }
}

/// The refusal for a token whose signature held but a claim did not.
fn claim_refusal(kind: &ErrorKind) -> Option<TokenRefusal> {
    Some(match kind {
        ErrorKind::ExpiredSignature => TokenRefusal::Expired,
        ErrorKind::ImmatureSignature => TokenRefusal::NotYetValid,
        ErrorKind::InvalidAudience => TokenRefusal::WrongAudience,
        ErrorKind::InvalidIssuer => TokenRefusal::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => TokenRefusal::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => TokenRefusal::MissingClaim(claim.clone()),
        _ => return None,
    })
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
        assert!(auth.expires_in(&verified) > Duration::from_secs(50));
    }

    #[test]
    fn an_exp_far_in_the_future_is_taken_as_the_longest_lifetime() {
        let auth = SubscriberAuth::hmac(&secret(), false);
        for exp in [u64::MAX, i64::MAX as u64, 1 << 62] {
            let far = Claims { exp, ..claims(0) };
            assert_eq!(auth.expires_in(&far), LONGEST_LIFETIME, "{exp}");
        }
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
