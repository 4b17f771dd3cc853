//! The Leptos web app, rendered on the server and hydrated in the browser. The only
//! module that names Leptos; everything else is the hub and its HTTP API.

pub mod options;
pub mod site;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Uri;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::state::AppState;
use site::SiteSource;

/// Adds the page routes, and serves the site's static files (`/pkg/…`, favicon) for
/// every other path (from the binary or a directory, see [`site`]), with the app's
/// 404 page when there is no such file.
pub fn routes(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let options = state.leptos_options.clone();
    let source = SiteSource::choose();
    match source {
        SiteSource::Embedded => tracing::info!("serving the web app's files from the binary"),
        SiteSource::Directory => {
            tracing::info!("serving the web app's files from {}", options.site_root);
        }
    }
    let from_directory = leptos_axum::file_and_error_handler::<AppState, _>(app::shell);
    let files = move |uri: Uri, state: State<AppState>, request: Request| async move {
        let embedded = match source {
            SiteSource::Embedded => site::embedded_file(&request),
            SiteSource::Directory => None,
        };
        match embedded {
            Some(response) => response,
            None => from_directory(uri, state, request).await,
        }
    };
    router
        .leptos_routes(state, generate_route_list(app::App), move || app::shell(options.clone()))
        .fallback(files)
}
