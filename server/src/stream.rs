//! Turns a [`Subscription`] into the bytes of an event-stream response: the preamble,
//! then frames as they come, with a heartbeat comment whenever the stream has been
//! quiet for a heartbeat interval.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::hub::{Next, Subscription};
use crate::sse;

/// How an event stream is framed.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Write a comment when nothing else was written for this long.
    pub heartbeat: Duration,
    /// The reconnection delay sent to the browser in the preamble.
    pub retry: Duration,
}

/// The response body for `subscription`. It ends when the hub closes the subscription
/// (task finished, shutdown, slow reader, operator); when the client goes away the
/// body is dropped, and with it the subscription, which unregisters the connection.
pub fn event_stream(
    subscription: Subscription,
    options: StreamOptions,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let preamble = sse::preamble(options.retry.as_millis().try_into().unwrap_or(u64::MAX));
    let heartbeat = sse::comment("heartbeat");
    futures::stream::unfold((Some(preamble), subscription), move |(preamble, mut subscription)| {
        let heartbeat = heartbeat.clone();
        async move {
            if let Some(preamble) = preamble {
                return Some((Ok(preamble), (None, subscription)));
            }
            match tokio::time::timeout(options.heartbeat, subscription.next()).await {
                Ok(Next::Frame(frame)) => Some((Ok(frame), (None, subscription))),
                Ok(Next::Closed(_)) => None,
                Err(_quiet) => Some((Ok(heartbeat), (None, subscription))),
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

    const OPTIONS: StreamOptions =
        StreamOptions { heartbeat: Duration::from_secs(15), retry: Duration::from_millis(2500) };

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
