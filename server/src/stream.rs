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
    futures::stream::unfold(
        (Some(preamble), subscription),
        move |(preamble, mut subscription)| {
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
        },
    )
}
