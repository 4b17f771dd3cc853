//! The whole application as a router, and the serve loop that shuts it down in order.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::net::Guards;
use crate::state::AppState;

/// Every route: the API and, with the `ssr` feature, the web app and its assets.
pub fn router(state: AppState) -> Router {
    let router = crate::api::router(&state);
    #[cfg(feature = "ssr")]
    let router = crate::web::routes(router, &state);
    #[cfg(not(feature = "ssr"))]
    let router = router
        .fallback(|| async { crate::error::ApiError::NotFound("no such endpoint".to_owned()) });
    crate::api::with_outer_layers(router, &state).with_state(state)
}

/// Serves until `shutdown` resolves, then ends every stream, lets in-flight requests
/// finish, and returns once they have or when `grace` has passed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let hub = state.hub.clone();
    let grace = state.config.shutdown_grace;
    let guards = Guards {
        header_timeout: state.config.header_timeout,
        body_timeout: state.config.body_timeout,
        keepalive_timeout: state.config.keepalive_timeout,
        write_timeout: state.config.write_timeout,
        max_body_bytes: state.config.max_body_bytes as usize,
    };
    let app = router(state);
    let stop_hub = hub.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: ending streams, refusing new requests");
        stop_hub.shutdown();
    });
    let server = crate::net::serve(listener, guards, hub.metrics_handle(), app, {
        let hub = hub.clone();
        async move { hub.shutting_down().await }
    });
    tokio::select! {
        () = server => {}
        () = grace_elapsed(&hub, grace) => {
            tracing::warn!("shutdown grace period of {} elapsed; exiting", humantime::format_duration(grace));
        }
    }
    if tokio::time::timeout(LEAVE_TIMEOUT, hub.leave()).await.is_err() {
        tracing::warn!("could not withdraw this node's presence in time; it will expire");
    }
}

/// How long leaving the cluster may take on the way out.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

async fn grace_elapsed(hub: &crate::Hub, grace: Duration) {
    hub.shutting_down().await;
    tokio::time::sleep(grace).await;
}
