//! Settings that change what a node serves or how it speaks: `--ui off` serves the API
//! alone; `--log-format json` writes one JSON object per log line.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::node::Node;
use crate::support::{InProcess, eventually};

#[tokio::test]
async fn with_the_ui_off_only_the_api_is_served() {
    let node = InProcess::with(&["--ui", "off"]);
    for path in ["/", "/pkg/herald.js", "/favicon.ico"] {
        let (status, body) = node.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: a JSON error, not the app: {body}");
    }
    let (status, body) = node.post("/jobs/demo", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("--ui"), "{body}");

    // The API is all there.
    let (status, _) = node.post("/push", json!({"broadcast": true, "message": "x"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = node.post("/jobs", json!({"title": "t", "total": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(node.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn with_the_ui_on_the_page_and_the_demo_are_served() {
    let node = InProcess::with(&[]);
    let (status, headers, _) = node.send(Method::GET, "/", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let (status, body) = node.post("/jobs/demo", json!({"steps": 1, "interval_ms": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let mut node = Node::start(&["--log-format", "json"]).await;
    node.push(json!({"broadcast": true, "message": "x"})).await;
    node.terminate();
    node.wait().await;
    // The last lines may still be on their way through the pipe.
    eventually(|| async { node.log().contains("shutting down") }).await;
    let log = node.log();
    for line in log.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(entry["level"].is_string() && entry["fields"]["message"].is_string(), "{line}");
    }
}
