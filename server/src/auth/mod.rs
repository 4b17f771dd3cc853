//! Who may do what. Publishers present a key ([`publish`]); subscribers present a
//! signed token naming their client id and topics ([`token`]). Both are off by
//! default, for local use and `make run`.

pub mod publish;
pub mod token;

use axum::http::{HeaderMap, header};

pub use publish::{PublishKeys, Refusal};
pub use token::{Claims, SubscriberAuth, TokenRefusal};

/// A value that must not leak: its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the code that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.len() < 16 {
            return Err("must be at least 16 characters".to_owned());
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".to_owned());
        }
        Ok(Self(value.to_owned()))
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}
