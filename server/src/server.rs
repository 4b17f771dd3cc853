//! The whole application as a router, and the serve loop that shuts it down in order.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::Switch;
use crate::net::{Guards, Service, Tls};
use crate::state::AppState;

/// Every route: the API and, with the `ssr` feature, the web app and its assets.
pub fn router(state: AppState) -> Router {
    let router = crate::api::router(&state);
    let router =
        if state.config.ui == Switch::On { with_web_app(router, &state) } else { api_only(router) };
    crate::api::with_outer_layers(router, &state).with_state(state)
}

/// The page and its assets for every path the API does not take.
#[cfg(feature = "ssr")]
fn with_web_app(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    crate::web::routes(router, state)
}

/// Built without the web app: the API alone.
#[cfg(not(feature = "ssr"))]
fn with_web_app(router: Router<AppState>, _: &AppState) -> Router<AppState> {
    api_only(router)
}

/// A JSON 404 for every path the API does not take.
fn api_only(router: Router<AppState>) -> Router<AppState> {
    router.fallback(|| async { crate::error::ApiError::NotFound("no such endpoint".to_owned()) })
}

/// Serves plain-text HTTP until `shutdown` resolves (see [`serve_with`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, None, state, shutdown).await;
}

/// Serves until `shutdown` resolves, over TLS if `tls` is given (its certificate kept
/// current meanwhile), then ends every stream, lets in-flight requests finish, and
/// returns once they have or when `grace` has passed.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<Tls>,
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
    let service = Service { guards, metrics: hub.metrics_handle(), tls, app: router(state) };
    // One token stops everything: the hub (streams end, nothing new is taken), the
    // listener and every connection once its response is over.
    let stop = hub.stop_token();
    match &service.tls {
        Some(tls) => tokio::spawn(tls.clone().keep_current(stop.clone())),
        None => tokio::spawn(crate::net::ignore_hangups(stop.clone())),
    };
    let server = crate::net::serve(listener, service, stop.clone());
    tokio::pin!(server);
    let served_out = tokio::select! {
        () = &mut server => true,
        () = shutdown => {
            tracing::info!("shutting down: ending streams, refusing new requests");
            hub.shutdown();
            false
        }
        // Shut down by other means (the hub's owner called `Hub::shutdown`).
        () = stop.cancelled() => false,
    };
    // Everything from here, leaving the cluster included, fits in the grace period.
    let deadline = tokio::time::Instant::now() + grace;
    if !served_out {
        tokio::select! {
            () = server => {}
            () = tokio::time::sleep_until(deadline) => {
                let grace = humantime::format_duration(grace);
                tracing::warn!("shutdown grace period of {grace} elapsed; exiting");
            }
        }
    }
    let leave_by = deadline.min(tokio::time::Instant::now() + LEAVE_TIMEOUT);
    if tokio::time::timeout_at(leave_by, hub.leave()).await.is_err() {
        tracing::warn!("could not withdraw this node's presence in time; it will expire");
    }
}

/// How long leaving the cluster may take on the way out.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
