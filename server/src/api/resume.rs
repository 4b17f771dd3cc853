//! Where a client says it was: the last event id it saw, from whichever of the ways
//! clients state it this request uses.
//!
//! Three carriers, in this order of precedence (the first that holds an id wins):
//!
//! 1. the `Last-Event-ID` header: what EventSource sends when it reconnects (WHATWG
//!    HTML §9.2.3), so it is always the newest position;
//! 2. the `lastEventId` query parameter: what the most used EventSource polyfill
//!    (`event-source-polyfill`) appends to the URL when it reconnects, in place of
//!    its previous one, so it is newer than anything else in the URL;
//! 3. the `last_event_id` query parameter: what a page writes into the URL of its
//!    first connection after a reload (EventSource cannot set headers). EventSource
//!    keeps that URL for every reconnect, so it is the oldest position of the three.
//!
//! A carrier that is present but empty, or holds only whitespace, counts as absent:
//! proxies, polyfills and hand-written clients send `Last-Event-ID:` with nothing
//! after it, and such a header must not hide the query's id (the client would then
//! resume from nowhere and skip what it missed). Each query parameter may be given
//! once; the header may be repeated only with one value.

use axum::http::HeaderMap;

use crate::error::ApiError;

/// The `Last-Event-ID` header (WHATWG HTML §9.2.3).
pub(super) const HEADER: &str = "last-event-id";
/// The query parameter a page sets on its first connection.
pub(super) const QUERY: &str = "last_event_id";
/// The query parameter `event-source-polyfill` sets when it reconnects.
pub(super) const POLYFILL_QUERY: &str = "lastEventId";

/// The ids a request's query string states, by parameter.
#[derive(Debug, Default, Clone)]
pub(super) struct QueryPosition {
    /// `last_event_id`.
    pub(super) last_event_id: Option<String>,
    /// `lastEventId`.
    pub(super) polyfill: Option<String>,
}

impl QueryPosition {
    /// Takes `key = value` if it is one of the position parameters; returns whether
    /// it was.
    ///
    /// # Errors
    /// A 400 when the parameter was already given.
    pub(super) fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        let slot = match key {
            QUERY => &mut self.last_event_id,
            POLYFILL_QUERY => &mut self.polyfill,
            _ => return Ok(false),
        };
        if slot.is_some() {
            return Err(ApiError::BadRequest(format!("{key} must be given at most once")));
        }
        *slot = Some(value.to_owned());
        Ok(true)
    }
}

/// The id the client resumes from, if it states one anywhere (see the module docs
/// for the precedence).
///
/// # Errors
/// A 400 when `Last-Event-ID` is repeated with different ids.
pub(super) fn resume_from<'a>(
    headers: &'a HeaderMap,
    query: &'a QueryPosition,
) -> Result<Option<&'a str>, ApiError> {
    if let Some(id) = header_id(headers)? {
        return Ok(Some(id));
    }
    Ok([&query.polyfill, &query.last_event_id]
        .into_iter()
        .find_map(|stated| stated.as_deref().and_then(non_blank)))
}

/// The `Last-Event-ID` header's id, if it holds one. A value that is not visible
/// ASCII cannot be an id Herald gave, and is passed on for the hub to answer with a
/// gap like any other id it does not know.
fn header_id(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(HEADER) {
        let Some(id) = non_blank(value.to_str().unwrap_or("\u{fffd}")) else { continue };
        match found {
            Some(earlier) if earlier != id => {
                return Err(ApiError::BadRequest(
                    "Last-Event-ID is given more than once, with different ids".to_owned(),
                ));
            }
            _ => found = Some(id),
        }
    }
    Ok(found)
}

/// `text` without surrounding whitespace, or `None` if nothing is left.
fn non_blank(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, HeaderValue::from_static(value));
        }
        headers
    }

    fn query(last_event_id: Option<&str>, polyfill: Option<&str>) -> QueryPosition {
        QueryPosition {
            last_event_id: last_event_id.map(str::to_owned),
            polyfill: polyfill.map(str::to_owned),
        }
    }

    #[test]
    fn the_header_wins_then_the_polyfills_parameter_then_the_pages() {
        let all = query(Some("page"), Some("polyfill"));
        assert_eq!(resume_from(&headers(&["header"]), &all).unwrap(), Some("header"));
        assert_eq!(resume_from(&headers(&[]), &all).unwrap(), Some("polyfill"));
        let page_only = query(Some("page"), None);
        assert_eq!(resume_from(&headers(&[]), &page_only).unwrap(), Some("page"));
        assert_eq!(resume_from(&headers(&[]), &query(None, None)).unwrap(), None);
    }

    #[test]
    fn an_empty_or_blank_carrier_counts_as_absent() {
        let page = query(Some("page"), Some(""));
        for blank in ["", " ", "\t", " \t "] {
            assert_eq!(resume_from(&headers(&[blank]), &page).unwrap(), Some("page"), "{blank:?}");
        }
        assert_eq!(resume_from(&headers(&[""]), &query(Some("  "), Some(""))).unwrap(), None);
        assert_eq!(resume_from(&headers(&[" id "]), &page).unwrap(), Some("id"));
    }

    #[test]
    fn a_repeated_header_must_agree_with_itself() {
        let none = query(None, None);
        assert_eq!(resume_from(&headers(&["a", "", "a"]), &none).unwrap(), Some("a"));
        assert!(resume_from(&headers(&["a", "b"]), &none).is_err());
    }

    #[test]
    fn each_query_parameter_is_taken_once() {
        let mut position = QueryPosition::default();
        assert!(position.take(QUERY, "1").unwrap());
        assert!(position.take(POLYFILL_QUERY, "2").unwrap());
        assert!(!position.take("topic", "x").unwrap());
        assert!(position.take(QUERY, "3").is_err());
        assert!(position.take(POLYFILL_QUERY, "3").is_err());
    }
}
