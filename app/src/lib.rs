//! Herald's web app: one page, rendered on the server and hydrated in the browser
//! (docs/contract.md §4).
//!
//! The page shows this tab's client id and the live state of its client stream, lists the
//! messages that stream delivers, pushes messages through `POST /push`, runs the demo task
//! and follows its task stream to the end, and lists the connected clients.
//!
//! # Rendering
//! The same components run three ways, chosen by crate feature:
//! - `ssr` (the `herald` server): renders inert initial state — a "…" client id, state
//!   `connecting`, no messages. Nothing here touches a browser API.
//! - `hydrate` (cargo-leptos' wasm): takes over the server's HTML; effects then create the
//!   client id, open the `EventSource`s and start polling.
//! - `csr` (Trunk): the same as `hydrate`, mounted from scratch.
//!
//! Browser-only code is behind `#[cfg(any(feature = "hydrate", feature = "csr"))]`, and
//! everything it opens (EventSources, the polling timer) is closed in `on_cleanup`.
//!
//! # Layout
//! - [`api`]: the JSON and URLs of the server's HTTP API, as the page uses them (pure).
//! - [`stream`]: this tab's client stream — id, topics, connection state, received messages.
//! - [`connection`], [`messages`], [`push`], [`task`], [`clients`]: one panel each.
//! - [`home`]: the page that puts the panels together.
//! - `browser` (hydrate/csr only): the `EventSource` wrapper, session storage, clock, HTTP.

use leptos::prelude::*;
use leptos_meta::{Link, MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

pub mod api;
#[cfg(any(feature = "hydrate", feature = "csr"))]
mod browser;
pub mod clients;
pub mod connection;
pub mod credentials;
pub mod home;
pub mod messages;
pub mod push;
pub mod stream;
pub mod task;

/// The static build's settings: reads `config_url` (`{"server": "https://…"}`, the
/// Herald the page talks to; without it, the page's own origin). Call before mounting.
#[cfg(feature = "csr")]
pub async fn configure(config_url: &str) {
    browser::configure(config_url).await;
}

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: document metadata and the router with its single page.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    // cargo-leptos serves the stylesheet as /pkg/herald.css; the Trunk build links
    // style/main.css itself (frontend/index.html), where this path would be a 404.
    let stylesheet = (!cfg!(feature = "csr")).then(|| {
        view! { <Stylesheet id="leptos" href="/pkg/herald.css"/> }
    });

    view! {
        {stylesheet}
        <Title text="Herald"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                <Route path=path!("") view=home::HomePage/>
            </Routes>
        </Router>
    }
}
