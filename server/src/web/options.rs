//! The options the web app is rendered with, read once at start: part of the
//! node's state, so apart from the routes that use that state.

use std::net::SocketAddr;

use leptos::config::LeptosOptions;

/// The name cargo-leptos gives the wasm, JS and CSS bundles (`/pkg/herald.*`).
const OUTPUT_NAME: &str = "herald";

/// The Leptos options: cargo-leptos' `LEPTOS_*` variables where set (`LEPTOS_SITE_ROOT`
/// says where the built site is), over defaults that name the bundles `herald`, so that
/// a binary built by plain `cargo build` serves the same bundle names.
///
/// Read through `get_config_from_str` rather than `get_configuration(None)`: the latter,
/// in a binary built without cargo-leptos, prints a warning with `eprintln!`, which
/// panics when stderr is closed.
pub fn leptos_options(listen: SocketAddr) -> LeptosOptions {
    let defaults = format!("[package.metadata.leptos]\noutput-name = \"{OUTPUT_NAME}\"\n");
    let mut options = leptos::config::get_config_from_str(&defaults).unwrap_or_else(|error| {
        tracing::warn!("ignoring invalid LEPTOS_* settings: {error}");
        LeptosOptions::builder().output_name(OUTPUT_NAME).site_root("target/site").build()
    });
    if options.output_name.is_empty() {
        options.output_name = OUTPUT_NAME.into();
    }
    options.site_addr = listen;
    options
}
