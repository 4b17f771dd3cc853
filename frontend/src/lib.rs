//! The wasm entry point: hydrates the server-rendered [`app::App`] (cargo-leptos) or,
//! for the client-side Trunk build, mounts it from scratch.

// Leptos view types nest deeply; release builds need more than the default 128.
#![recursion_limit = "256"]

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

/// The static build: reads `config.json` beside `index.html` (which Herald to talk to),
/// then mounts the app.
#[cfg(feature = "csr")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        app::configure("config.json").await;
        leptos::mount::mount_to_body(app::App);
    });
}
