//! Publish keys: with keys configured, every write and the presence list need one.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestServer;

const KEY: &str = "publisher-key-0123456789";
const OTHER_KEY: &str = "second-publisher-key-0123";

async fn secured() -> TestServer {
    TestServer::start_with(&["--publish-key", KEY, "--publish-key", OTHER_KEY]).await
}

/// Sends `method path` with `body` and an optional bearer key.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = server.http.request(method, server.url(path)).json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let challenge =
        response.headers().get("www-authenticate").map(|value| value.to_str().unwrap().to_owned());
    let (status, body) = crate::support::json_response(response).await;
    (status, body, challenge)
}

#[tokio::test]
async fn every_write_and_the_presence_list_need_a_key() {
    let server = secured().await;
    let protected = [
        (Method::POST, "/push", json!({"broadcast": true, "message": "x"})),
        (Method::POST, "/jobs", json!({"title": "t", "total": 1})),
        (Method::POST, "/jobs/demo", json!({"steps": 1, "interval_ms": 0})),
        (Method::POST, "/jobs/abc/progress", json!({"step": 1})),
        (Method::POST, "/jobs/abc/finish", json!({"result": 1})),
        (Method::DELETE, "/clients/someone", Value::Null),
        (Method::GET, "/clients", Value::Null),
    ];
    for (method, path, body) in protected {
        let (status, error, challenge) =
            call(&server, method.clone(), path, body.clone(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a key");
        assert!(error["error"].as_str().unwrap().contains("publish key"), "{error}");
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="herald""#));

        let (status, error, _) =
            call(&server, method.clone(), path, body.clone(), Some("wrong-key-0123456789")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} with a wrong key: {error}");

        let (status, _, _) = call(&server, method.clone(), path, body, Some(OTHER_KEY)).await;
        assert!(
            !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "{method} {path} with a right key got {status}"
        );
    }
}

#[tokio::test]
async fn with_a_key_publishing_works_and_reading_stays_open() {
    let server = secured().await;
    let mut stream = server.subscribe("client_id=reader").await;
    let (status, reply, _) = call(
        &server,
        Method::POST,
        "/push",
        json!({"client_id": "reader", "message": "signed"}),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(stream.next_data().await, "signed");
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_keys_herald_stays_open() {
    let server = TestServer::start().await;
    server.push(json!({"broadcast": true, "message": "open"})).await;
    assert_eq!(server.get("/clients").await.0, StatusCode::OK);
}

#[tokio::test]
async fn keys_never_show_in_help_or_debug_output() {
    let config = <herald::Config as clap::Parser>::parse_from(["herald", "--publish-key", KEY]);
    assert!(!format!("{config:?}").contains(KEY));
    let short =
        <herald::Config as clap::Parser>::try_parse_from(["herald", "--publish-key", "abc"]);
    assert!(short.is_err(), "keys shorter than 16 characters are refused at start");
}

#[tokio::test]
async fn a_listed_origin_may_push_from_a_browser_with_credentials() {
    let server = TestServer::start_with(&["--cors-origin", "https://app.example"]).await;
    let preflight = server
        .http
        .request(Method::OPTIONS, server.url("/push"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = |name: &str| {
        preflight.headers().get(name).map(|value| value.to_str().unwrap().to_lowercase())
    };
    assert_eq!(allowed("access-control-allow-origin").as_deref(), Some("https://app.example"));
    assert_eq!(allowed("access-control-allow-credentials").as_deref(), Some("true"));
    assert!(allowed("access-control-allow-methods").unwrap().contains("post"));
    assert!(allowed("access-control-allow-headers").unwrap().contains("authorization"));

    let stranger = server
        .http
        .request(Method::OPTIONS, server.url("/push"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(stranger.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_cross_origin_publisher_can_read_when_to_retry() {
    let server = TestServer::start_with(&[
        "--cors-origin",
        "https://app.example",
        "--push-rate",
        "1",
        "--push-burst",
        "1",
    ])
    .await;
    let push = || {
        server
            .http
            .post(server.url("/push"))
            .header("origin", "https://app.example")
            .json(&serde_json::json!({"broadcast": true, "message": "x"}))
            .send()
    };
    assert_eq!(push().await.unwrap().status(), StatusCode::OK);
    let limited = push().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let exposed = limited.headers()["access-control-expose-headers"].to_str().unwrap();
    let exposed = exposed.to_ascii_lowercase();
    for header in ["retry-after", "www-authenticate", "location"] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_body_refused_by_the_connection_still_carries_cors_headers() {
    let server = TestServer::start_with(&[
        "--cors-origin",
        "https://app.example",
        "--max-body-bytes",
        "100",
    ])
    .await;
    let refused = server
        .http
        .post(server.url("/push"))
        .header("origin", "https://app.example")
        .header("content-type", "application/json")
        .body("x".repeat(101))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(refused.headers()["connection"], "close");
    let error: Value = refused.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("too large"), "{error}");
}

#[tokio::test]
async fn any_origin_is_allowed_only_without_credentials() {
    let server = TestServer::start_with(&["--cors-origin", "*"]).await;
    let response =
        server.http.get(server.url("/healthz")).header("origin", "https://a.example").send();
    let response = response.await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(response.headers().get("access-control-allow-credentials").is_none());
    let argv = ["herald", "--cors-origin", "*", "--cors-origin", "https://a.example"];
    let config = <herald::Config as clap::Parser>::parse_from(argv);
    assert!(herald::AppState::new(config).is_err(), "* mixed with named origins is refused");
    assert!(
        <herald::Config as clap::Parser>::try_parse_from([
            "herald",
            "--cors-origin",
            "a.example/x"
        ])
        .is_err()
    );
}

/// Open mode beyond loopback is allowed, but never silently.
#[tokio::test]
async fn listening_beyond_loopback_without_keys_is_warned_about() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--listen", "0.0.0.0:0", "--log", "warn"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let warning = tokio::time::timeout(crate::support::PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("no publish key") {
                return line;
            }
        }
        panic!("herald exited without the warning");
    })
    .await
    .expect("the warning, at start");
    assert!(warning.contains("WARN"), "{warning}");
}
