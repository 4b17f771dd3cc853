//! Every bad input of docs/contract.md §3 gets the status the contract names and a JSON body
//! `{"error": "<for a person>"}` — never a 5xx. Requests whose answer does not depend on
//! the connection go through the router in this process ([`InProcess`]); bad input that
//! only a socket can carry is in `http1.rs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{InProcess, TestServer, json_response};

/// Asserts the status and that the body is `{"error": "..."}` mentioning `hint`.
fn assert_error(case: &str, (status, body): (StatusCode, Value), expected: StatusCode, hint: &str) {
    assert_eq!(status, expected, "{case}: {body}");
    let message =
        body["error"].as_str().unwrap_or_else(|| panic!("{case}: no error field in {body}"));
    assert!(
        message.to_lowercase().contains(&hint.to_lowercase()),
        "{case}: {message:?} should mention {hint:?}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{case}: only the error field: {body}");
}

#[tokio::test]
async fn bad_subscriptions_are_refused() {
    let server = InProcess::with(&["--max-topics", "2"]);
    let cases = [
        ("no client id", "/sse", "client_id is required"),
        ("empty client id", "/sse?client_id=", "client_id must be"),
        ("space in client id", "/sse?client_id=a%20b", "client_id must be"),
        ("slash in client id", "/sse?client_id=a/b", "client_id must be"),
        ("client id too long", &format!("/sse?client_id={}", "x".repeat(129)), "client_id must be"),
        ("client id twice", "/sse?client_id=a&client_id=b", "once"),
        ("bad topic", "/sse?client_id=a&topic=a%0Ab", "topic must be"),
        ("too many topics", "/sse?client_id=a&topic=a&topic=b&topic=c", "at most 2 topics"),
    ];
    for (case, path, hint) in cases {
        assert_error(case, server.get(path).await, StatusCode::BAD_REQUEST, hint);
    }
}

#[tokio::test]
async fn bad_pushes_are_refused_with_clear_errors() {
    let server = InProcess::with(&["--max-message-bytes", "16", "--max-body-bytes", "1024"]);
    let cases = [
        ("no target", json!({"message": "x"}), StatusCode::BAD_REQUEST, "exactly one target"),
        (
            "two targets",
            json!({"client_id": "a", "topic": "t", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "names 2",
        ),
        (
            "client and broadcast",
            json!({"client_id": "a", "broadcast": true, "message": "x"}),
            StatusCode::BAD_REQUEST,
            "exactly one target",
        ),
        (
            "broadcast false alone",
            json!({"broadcast": false, "message": "x"}),
            StatusCode::BAD_REQUEST,
            "exactly one target",
        ),
        (
            "missing message",
            json!({"client_id": "a"}),
            StatusCode::BAD_REQUEST,
            "message is required",
        ),
        (
            "null message",
            json!({"client_id": "a", "message": null}),
            StatusCode::BAD_REQUEST,
            "message is required",
        ),
        (
            "unknown field",
            json!({"client_id": "a", "message": "x", "priority": 1}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "bad client id",
            json!({"client_id": "a b", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "client_id must be",
        ),
        (
            "bad topic",
            json!({"topic": "", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "topic must be",
        ),
        (
            "event with LF",
            json!({"broadcast": true, "event": "a\nb", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "event must be",
        ),
        (
            "event with CR",
            json!({"broadcast": true, "event": "a\rb", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "event must be",
        ),
        (
            "empty event",
            json!({"broadcast": true, "event": "", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "event must be",
        ),
        (
            "reserved gap",
            json!({"broadcast": true, "event": "gap", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "reserved",
        ),
        (
            "reserved herald.*",
            json!({"broadcast": true, "event": "herald.position", "message": "x"}),
            StatusCode::BAD_REQUEST,
            "reserved",
        ),
        (
            "wrong type",
            json!({"client_id": 5, "message": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "message too large",
            json!({"broadcast": true, "message": "x".repeat(17)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit is 16",
        ),
        (
            "JSON message too large",
            json!({"broadcast": true, "message": {"k": "x".repeat(10)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit is 16",
        ),
        (
            "body too large",
            json!({"broadcast": true, "message": "x".repeat(2000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (case, body, status, hint) in cases {
        assert_error(case, server.post("/push", body).await, status, hint);
    }
    let (status, reply) =
        server.post("/push", json!({"broadcast": true, "message": "x".repeat(16)})).await;
    assert_eq!(
        (status, reply["delivered"].as_u64()),
        (StatusCode::OK, Some(0)),
        "the limit is inclusive"
    );
}

#[tokio::test]
async fn malformed_bodies_and_content_types_are_refused() {
    let server = InProcess::with(&[]);
    let server = &server;
    let send = |content_type: Option<&'static str>, body: &'static str| async move {
        let (status, _, body) = server.send(Method::POST, "/push", content_type, body).await;
        (status, body)
    };
    let json = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let cases = [
        (
            "truncated JSON",
            json,
            "{\"broadcast\": true, \"message\": ",
            StatusCode::BAD_REQUEST,
            "",
        ),
        ("empty JSON body", json, "", StatusCode::BAD_REQUEST, ""),
        (
            "text body",
            Some("text/plain"),
            "hello",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        ("no content type", None, "{}", StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        (
            "unknown form field",
            form,
            "client_id=a&message=x&colour=red",
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "form broadcast not a bool",
            form,
            "broadcast=maybe&message=x",
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (case, content_type, body, status, hint) in cases {
        assert_error(case, send(content_type, body).await, status, hint);
    }
}

#[tokio::test]
async fn wrong_methods_get_a_json_405() {
    let server = InProcess::with(&[]);
    for (method, path) in [
        (Method::GET, "/push"),
        (Method::POST, "/sse"),
        (Method::DELETE, "/jobs/demo"),
        (Method::PUT, "/clients"),
    ] {
        let (status, _, body) = server.send(method.clone(), path, None, "").await;
        assert_error(
            &format!("{method} {path}"),
            (status, body),
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
        );
    }
}

#[tokio::test]
async fn a_push_by_get_says_how_to_push_and_pushes_nothing() {
    let server = TestServer::start().await;
    let mut client = server.subscribe("client_id=a").await;
    let response =
        server.http.get(server.url("/push?client_id=a&message=hi")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    let (status, body) = json_response(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let error = body["error"].as_str().unwrap();
    for hint in ["POST /push", "application/json", "x-www-form-urlencoded", "curl"] {
        assert!(error.contains(hint), "{hint} in {error}");
    }
    server.push(json!({"client_id": "a", "message": "by POST"})).await;
    assert_eq!(client.next_data().await, "by POST", "the GET pushed nothing");
}

#[tokio::test]
async fn bad_task_requests_are_refused() {
    let server = InProcess::with(&[]);
    let (_, created) = server.post("/jobs", json!({"title": "t", "total": 2})).await;
    let job = created["id"].as_str().unwrap().to_owned();
    let cases = [
        ("/jobs", json!({"title": "t", "total": 0}), StatusCode::BAD_REQUEST, "total must be"),
        ("/jobs", json!({"title": "t"}), StatusCode::BAD_REQUEST, "missing field"),
        ("/jobs", json!({"title": "t", "total": -1}), StatusCode::BAD_REQUEST, "invalid value"),
        (
            "/jobs",
            json!({"title": "t".repeat(1025), "total": 1}),
            StatusCode::BAD_REQUEST,
            "title must be",
        ),
        ("/jobs/demo", json!({"steps": 0}), StatusCode::BAD_REQUEST, "steps must be"),
        (
            "/jobs/demo",
            json!({"steps": 2, "interval_ms": 3_600_000}),
            StatusCode::BAD_REQUEST,
            "interval_ms",
        ),
        ("/jobs/demo", json!({"steps": 2, "speed": 1}), StatusCode::BAD_REQUEST, "unknown field"),
        ("/jobs/nope/progress", json!({"step": 1}), StatusCode::NOT_FOUND, "no task"),
        ("/jobs/nope/finish", json!({"result": 1}), StatusCode::NOT_FOUND, "no task"),
        (
            &format!("/jobs/{job}/progress"),
            json!({"step": 3}),
            StatusCode::BAD_REQUEST,
            "outside 0..=2",
        ),
        (&format!("/jobs/{job}/progress"), json!({}), StatusCode::BAD_REQUEST, "missing field"),
        (
            &format!("/jobs/{job}/finish"),
            json!({"result": 1, "error": "x"}),
            StatusCode::BAD_REQUEST,
            "not both",
        ),
    ];
    for (path, body, status, hint) in cases {
        assert_error(path, server.post(path, body).await, status, hint);
    }
    assert_error("unknown task", server.get("/jobs/nope").await, StatusCode::NOT_FOUND, "no task");
    assert_error(
        "unknown task stream",
        server.get("/jobs/nope/events").await,
        StatusCode::NOT_FOUND,
        "no task",
    );

    server.post(&format!("/jobs/{job}/finish"), json!({"result": "ok"})).await;
    let late = [("progress", json!({"step": 1})), ("finish", json!({"error": "again"}))];
    for (action, body) in late {
        let path = format!("/jobs/{job}/{action}");
        assert_error(
            &path,
            server.post(&path, body).await,
            StatusCode::CONFLICT,
            "already finished",
        );
    }
}

#[tokio::test]
async fn the_task_limit_answers_429() {
    let server = InProcess::with(&["--max-jobs", "2"]);
    for _ in 0..2 {
        assert_eq!(
            server.post("/jobs", json!({"title": "t", "total": 1})).await.0,
            StatusCode::CREATED
        );
    }
    assert_error(
        "third task",
        server.post("/jobs", json!({"title": "t", "total": 1})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too many tasks",
    );
}
