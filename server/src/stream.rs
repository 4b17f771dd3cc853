//! Turns a [`Subscription`] into the bytes of an event-stream response: the preamble,
//! then frames as they come, with a heartbeat comment whenever the stream has been
//! quiet for a heartbeat interval.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep};

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
    let now = Instant::now();
    EventStream {
        preamble: Some(sse::preamble(options.retry.as_millis().try_into().unwrap_or(u64::MAX))),
        subscription: Some(subscription),
        heartbeat: options.heartbeat,
        last_written: now,
        expires_at: options.expires_in.map(|remaining| now + remaining),
        timer: Box::pin(tokio::time::sleep_until(now + options.heartbeat)),
    }
}

/// An event stream's state, polled by hand: one timer for its whole life, moved only
/// when the stream is about to wait (a burst of frames never touches it), where a
/// timeout per frame would register and cancel a timer for every message.
struct EventStream {
    /// Written first, then gone.
    preamble: Option<Bytes>,
    /// `None` once the stream is over.
    subscription: Option<Subscription>,
    heartbeat: Duration,
    /// When the last frame or heartbeat was handed out.
    last_written: Instant,
    expires_at: Option<Instant>,
    /// Fires at the next heartbeat or at the token's expiry, whichever is first.
    timer: Pin<Box<Sleep>>,
}

impl EventStream {
    /// When the stream must next say something if no frame comes first.
    fn wake_at(&self) -> Instant {
        let beat = self.last_written + self.heartbeat;
        self.expires_at.map_or(beat, |expiry| expiry.min(beat))
    }

    /// What to write when the timer fires: the token's end, or a heartbeat.
    fn on_timer(&mut self, now: Instant) -> Bytes {
        if self.expires_at.is_some_and(|expiry| now >= expiry) {
            self.subscription = None;
            return sse::token_expired();
        }
        self.last_written = now;
        sse::comment("heartbeat")
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(preamble) = this.preamble.take() {
            return Poll::Ready(Some(Ok(preamble)));
        }
        let Some(subscription) = &mut this.subscription else { return Poll::Ready(None) };
        match subscription.poll_next(cx) {
            Poll::Ready(Next::Frame(frame)) => {
                this.last_written = Instant::now();
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Next::Closed(_)) => {
                this.subscription = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let wake_at = this.wake_at();
        if this.timer.deadline() != wake_at {
            this.timer.as_mut().reset(wake_at);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Ok(this.on_timer(Instant::now())))),
            Poll::Pending => Poll::Pending,
        }
    }
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
