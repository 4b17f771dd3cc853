//! The whole application as a router, and the serve loop that shuts it down in order.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::net::{GuardedListener, Guards, PeerAddr};
use crate::state::AppState;

/// Every route: the API and, with the `ssr` feature, the web app and its assets.
pub fn router(state: AppState) -> Router {
    let router = crate::api::router(&state);
    #[cfg(feature = "ssr")]
    let router = crate::web::routes(router, &state);
    #[cfg(not(feature = "ssr"))]
    let router = router
        .fallback(|| async { crate::error::ApiError::NotFound("no such endpoint".to_owned()) });
    router.with_state(state)
}

/// Serves until `shutdown` resolves, then ends every stream, lets in-flight requests
/// finish, and returns once they have or when `grace` has passed.
///
/// # Errors
/// An I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let grace = state.config.shutdown_grace;
    let guards = Guards {
        header_timeout: state.config.header_timeout,
        write_timeout: state.config.write_timeout,
    };
    let listener = GuardedListener::new(listener, guards, hub.metrics_handle());
    let app = router(state);
    let stop_hub = hub.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: ending streams, refusing new requests");
        stop_hub.shutdown();
    });
    // The peer's address is what per-address limits count by.
    let app = app.into_make_service_with_connect_info::<PeerAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let hub = hub.clone();
        async move { hub.shutting_down().await }
    });
    let result = tokio::select! {
        result = server.into_future() => result,
        () = grace_elapsed(&hub, grace) => {
            tracing::warn!("shutdown grace period of {} elapsed; exiting", humantime::format_duration(grace));
            Ok(())
        }
    };
    if tokio::time::timeout(LEAVE_TIMEOUT, hub.leave()).await.is_err() {
        tracing::warn!("could not withdraw this node's presence in time; it will expire");
    }
    result
}

/// How long leaving the cluster may take on the way out.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

async fn grace_elapsed(hub: &crate::Hub, grace: Duration) {
    hub.shutting_down().await;
    tokio::time::sleep(grace).await;
}
