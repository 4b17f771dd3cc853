//! Any `POST /push` request — any content type, any body, any headers the fuzzer
//! invents — is answered without a panic and never with a 5xx: bad input is always a
//! clear 4xx. Drives the real router, in process.

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, header};
use clap::Parser;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let router = runtime.block_on(async {
            let config = herald::Config::parse_from(["herald", "--push-rate", "1000000000"]);
            herald::server::router(herald::AppState::new(config).expect("a hub"))
        });
        Harness { runtime, router }
    })
}

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-8",
    "text/plain",
];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else { return };
    let harness = harness();
    let request = Request::post("/push")
        .header(header::CONTENT_TYPE, CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()])
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = harness.runtime.block_on(harness.router.clone().oneshot(request)).unwrap();
    assert!(
        !response.status().is_server_error(),
        "{} for {:?}",
        response.status(),
        String::from_utf8_lossy(body)
    );
});
