use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{SseClient, TestServer};

fn data(event: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

async fn expect_progress(stream: &mut SseClient, step: u64, total: u64) -> String {
    let event = stream.next().await;
    assert_eq!(event.event, "progress", "{event:?}");
    let data = data(&event);
    assert_eq!(
        (data["step"].as_u64(), data["total"].as_u64()),
        (Some(step), Some(total)),
        "{data}"
    );
    event.id
}

#[tokio::test]
async fn the_demo_task_streams_progress_then_done_then_ends_and_204s() {
    let server = TestServer::start().await;
    let (status, created) = server.post("/jobs/demo", json!({"steps": 3, "interval_ms": 20})).await;
    assert_eq!(status, StatusCode::CREATED);
    let events_url = created["events"].as_str().unwrap().to_owned();
    assert_eq!(events_url, format!("/jobs/{}/events", created["id"].as_str().unwrap()));

    let mut stream = server.open_stream(&events_url, None).await;
    for step in 0..=3 {
        expect_progress(&mut stream, step, 3).await;
    }
    let done = stream.next().await;
    assert_eq!(done.event, "done");
    let result = data(&done)["result"].as_str().unwrap_or_default().to_owned();
    assert!(result.starts_with("finished 3 steps in ") && result.ends_with(" s"), "{result}");
    stream.expect_end().await;

    let reconnect = server
        .http
        .get(server.url(&events_url))
        .header("Last-Event-ID", &done.id)
        .send()
        .await
        .unwrap();
    assert_eq!(reconnect.status(), StatusCode::NO_CONTENT, "EventSource stops on 204");
    let by_query = server
        .http
        .get(server.url(&format!("{events_url}?last_event_id={}", done.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_worker_drives_a_task_over_http_while_a_page_watches() {
    let server = TestServer::start().await;
    let (status, created) = server.post("/jobs", json!({"title": "Export", "total": 4})).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    let mut page = server.open_stream(&format!("/jobs/{id}/events"), None).await;
    expect_progress(&mut page, 0, 4).await;

    let (status, state) =
        server.post(&format!("/jobs/{id}/progress"), json!({"step": 2, "message": "half"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["step"], 2);
    let event = page.next().await;
    assert_eq!(data(&event), json!({"step": 2, "total": 4, "message": "half"}));

    server
        .post(&format!("/jobs/{id}/finish"), json!({"result": {"url": "/files/export.csv"}}))
        .await;
    let done = page.next().await;
    assert_eq!(
        (done.event.as_str(), data(&done)),
        ("done", json!({"result": {"url": "/files/export.csv"}}))
    );
    page.expect_end().await;

    let (status, state) = server.get(&format!("/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["state"], "done");
    assert_eq!(state["title"], "Export");
    assert_eq!(state["result"], json!({"url": "/files/export.csv"}));
    assert_eq!(state["last_event_id"], done.id.as_str());
}

#[tokio::test]
async fn a_late_watcher_gets_the_whole_log_and_a_reconnect_gets_the_rest() {
    let server = TestServer::start().await;
    let (_, created) = server.post("/jobs", json!({"title": "Build", "total": 2})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.post(&format!("/jobs/{id}/progress"), json!({"step": 1})).await;
    server.post(&format!("/jobs/{id}/progress"), json!({"step": 2})).await;
    server.post(&format!("/jobs/{id}/finish"), json!({"error": "tests failed"})).await;

    let mut late = server.open_stream(&format!("/jobs/{id}/events"), None).await;
    expect_progress(&mut late, 0, 2).await;
    let first = expect_progress(&mut late, 1, 2).await;
    expect_progress(&mut late, 2, 2).await;
    let done = late.next().await;
    assert_eq!(data(&done), json!({"error": "tests failed"}));
    late.expect_end().await;

    let mut resumed = server.open_stream(&format!("/jobs/{id}/events"), Some(&first)).await;
    expect_progress(&mut resumed, 2, 2).await;
    assert_eq!(resumed.next().await.event, "done");
    resumed.expect_end().await;
    let (_, state) = server.get(&format!("/jobs/{id}")).await;
    assert_eq!(
        (state["state"].as_str(), state["error"].as_str()),
        (Some("failed"), Some("tests failed"))
    );
}
