//! Turns a [`Subscription`] into the bytes of an event-stream response: the preamble,
//! then frames as they come, with a heartbeat comment whenever the stream has been
//! quiet for a heartbeat interval.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::Instant;

use crate::hub::{Next, Subscription};
use crate::sse;

/// How an event stream is framed.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Write a comment when nothing else was written for this long.
    pub heartbeat: Duration,
    /// The reconnection delay sent to the browser in the preamble.
    pub retry: Duration,
    /// When the subscriber's token runs out: the stream then says so and ends.
    pub expires_in: Option<Duration>,
}

impl StreamOptions {
    /// The same framing for a stream that must end after `expires_in`.
    pub fn expiring(self, expires_in: Option<Duration>) -> Self {
        Self { expires_in, ..self }
    }
}

/// The response body for `subscription`. It ends when the hub closes the subscription
/// (task finished, shutdown, slow reader, operator), or when the subscriber's token
/// expires, after a [`sse::TOKEN_EXPIRED_EVENT`] that tells the page to get a new one
/// (a stream that simply ended would be reopened with the stale token, and refused).
/// When the client goes away the body is dropped, and with it the subscription, which
/// unregisters the connection.
pub fn event_stream(
    subscription: Subscription,
    options: StreamOptions,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let preamble = sse::preamble(options.retry.as_millis().try_into().unwrap_or(u64::MAX));
    let heartbeat = sse::comment("heartbeat");
    let expires_at = options.expires_in.map(|remaining| Instant::now() + remaining);
    let state = Some((Some(preamble), subscription));
    futures::stream::unfold(state, move |state| {
        let heartbeat = heartbeat.clone();
        async move {
            let (preamble, mut subscription) = state?;
            if let Some(preamble) = preamble {
                return Some((Ok(preamble), Some((None, subscription))));
            }
            let quiet_until = Instant::now() + options.heartbeat;
            let wake = expires_at.map_or(quiet_until, |expiry| expiry.min(quiet_until));
            match tokio::time::timeout_at(wake, subscription.next()).await {
                Ok(Next::Frame(frame)) => Some((Ok(frame), Some((None, subscription)))),
                Ok(Next::Closed(_)) => None,
                Err(_) if expires_at.is_some_and(|expiry| Instant::now() >= expiry) => {
                    Some((Ok(sse::token_expired()), None))
                }
                Err(_quiet) => Some((Ok(heartbeat), Some((None, subscription)))),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;
    use crate::hub::types::{Payload, Target};
    use crate::hub::{Hub, HubOptions};

    const OPTIONS: StreamOptions = StreamOptions {
        heartbeat: Duration::from_secs(15),
        retry: Duration::from_millis(2500),
        expires_in: None,
    };

    async fn next_text(
        stream: &mut (impl Stream<Item = Result<Bytes, Infallible>> + Unpin),
    ) -> String {
        let Some(Ok(bytes)) = stream.next().await else { panic!("stream ended") };
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn opens_with_the_preamble_and_beats_only_when_quiet() {
        let hub = Hub::new(HubOptions::default()).unwrap();
        let subscription = hub.subscribe("a".parse().unwrap(), vec![], None).await.unwrap();
        let mut stream = Box::pin(event_stream(subscription, OPTIONS));
        assert_eq!(next_text(&mut stream).await, "retry: 2500\n: herald\n\n");
        assert!(
            next_text(&mut stream).await.ends_with("-0-p\nevent: herald.position\ndata: \n\n"),
            "the position marker"
        );

        let started = tokio::time::Instant::now();
        assert_eq!(next_text(&mut stream).await, ": heartbeat\n\n");
        assert_eq!(started.elapsed(), Duration::from_secs(15));

        tokio::time::advance(Duration::from_secs(10)).await;
        let published =
            hub.publish(&Target::Broadcast, None, &Payload::from("m".to_owned())).await.unwrap();
        assert_eq!(next_text(&mut stream).await, format!("id: {}\ndata: m\n\n", published.id));
        let quiet_since = tokio::time::Instant::now();
        assert_eq!(next_text(&mut stream).await, ": heartbeat\n\n");
        assert_eq!(
            quiet_since.elapsed(),
            Duration::from_secs(15),
            "a message resets the heartbeat"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn says_when_the_token_expires_and_ends() {
        let hub = Hub::new(HubOptions::default()).unwrap();
        let subscription = hub.subscribe("a".parse().unwrap(), vec![], None).await.unwrap();
        let options = OPTIONS.expiring(Some(Duration::from_secs(20)));
        let mut stream = Box::pin(event_stream(subscription, options));
        next_text(&mut stream).await;
        next_text(&mut stream).await;
        let started = tokio::time::Instant::now();
        assert_eq!(next_text(&mut stream).await, ": heartbeat\n\n");
        assert!(next_text(&mut stream).await.starts_with("event: herald.token-expired\n"));
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn ends_when_the_hub_closes_the_subscription() {
        let hub = Hub::new(HubOptions::default()).unwrap();
        let subscription = hub.subscribe("a".parse().unwrap(), vec![], None).await.unwrap();
        let mut stream = Box::pin(event_stream(subscription, OPTIONS));
        next_text(&mut stream).await;
        next_text(&mut stream).await;
        hub.shutdown();
        assert!(stream.next().await.is_none());
        assert_eq!(hub.metrics().open_connections(), 0);
    }
}
