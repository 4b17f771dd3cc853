//! The Leptos web app, rendered on the server and hydrated in the browser. The only
//! module that names Leptos; everything else is the hub and its HTTP API.

pub mod options;

use axum::Router;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::state::AppState;

/// Adds the page routes, and serves the site's static files (`/pkg/…`, favicon) for
/// every other path, with the app's 404 page when there is no such file.
pub fn routes(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let options = state.leptos_options.clone();
    router
        .leptos_routes(state, generate_route_list(app::App), move || app::shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
}
