//! Who may publish: applications present a publish key as `Authorization: Bearer …`.
//!
//! With no key configured Herald is open (the default for local use and `make run`);
//! with one or more, every write endpoint and the presence list need one of them. Keys
//! are compared in constant time, so timing does not reveal how much of a guess was
//! right, and they never appear in logs or `Debug` output.

use axum::http::HeaderMap;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{Secret, bearer};

/// Why a publisher was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer …` header (401).
    Missing,
    /// A key that is not one of the configured keys (403).
    Wrong,
}

/// The keys that allow publishing.
#[derive(Debug, Clone, Default)]
pub struct PublishKeys {
    keys: Vec<Secret>,
}

impl PublishKeys {
    /// Publishing needs one of `keys`; with none, anyone may publish.
    pub fn new(keys: Vec<Secret>) -> Self {
        Self { keys }
    }

    /// Whether any key is configured.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the request's bearer key; returns which key it was (its position in
    /// the configuration), or `None` when no key is needed.
    ///
    /// # Errors
    /// [`Refusal::Missing`] without a bearer token, [`Refusal::Wrong`] with a key that
    /// is not configured.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<usize>, Refusal> {
        if !self.enabled() {
            return Ok(None);
        }
        let presented = bearer(headers).ok_or(Refusal::Missing)?;
        // Every key is compared, matching or not, so the time taken does not say
        // which one (or how much of one) matched.
        let mut found = subtle::Choice::from(0);
        let mut which = 0_u64;
        for (index, key) in (0_u64..).zip(&self.keys) {
            let this = key.expose().as_bytes().ct_eq(presented.as_bytes());
            which = u64::conditional_select(&which, &index, this);
            found |= this;
        }
        match usize::try_from(which) {
            Ok(index) if bool::from(found) => Ok(Some(index)),
            _ => Err(Refusal::Wrong),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    fn keys() -> PublishKeys {
        PublishKeys::new(vec![
            "first-key-0123456789".parse().unwrap(),
            "second-key-0123456789".parse().unwrap(),
        ])
    }

    #[test]
    fn any_configured_key_is_accepted() {
        assert_eq!(keys().check(&headers(Some("Bearer first-key-0123456789"))), Ok(Some(0)));
        assert_eq!(keys().check(&headers(Some("bearer second-key-0123456789"))), Ok(Some(1)));
    }

    #[test]
    fn a_missing_or_wrong_key_is_refused() {
        assert_eq!(keys().check(&headers(None)), Err(Refusal::Missing));
        assert_eq!(keys().check(&headers(Some("Basic abc"))), Err(Refusal::Missing));
        assert_eq!(keys().check(&headers(Some("Bearer first-key"))), Err(Refusal::Wrong));
        assert_eq!(
            keys().check(&headers(Some("Bearer first-key-01234567890"))),
            Err(Refusal::Wrong)
        );
    }

    #[test]
    fn without_keys_everyone_may_publish() {
        assert_eq!(PublishKeys::default().check(&headers(None)), Ok(None));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret: Secret = "do-not-print-this-key".parse().unwrap();
        assert!(!format!("{secret:?} {:?}", keys()).contains("key-0123"));
        assert!("short".parse::<Secret>().is_err());
    }
}
