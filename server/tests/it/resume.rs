//! Resume by Last-Event-ID: what a client missed is replayed in order, once, before
//! anything live; what can no longer be replayed is announced with `gap`.

use std::sync::Arc;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{SseClient, TestServer, eventually};
use herald::hub::types::DisconnectReason;

#[tokio::test]
async fn a_client_resumes_by_header_with_what_it_missed_then_live() {
    let server = TestServer::start().await;
    let mut client = server.subscribe("client_id=a&topic=news").await;
    let (seen, _) = server.push(json!({"client_id": "a", "message": "m1"})).await;
    assert_eq!(client.next().await.id, seen);
    drop(client);

    server.push(json!({"client_id": "a", "message": "m2"})).await;
    server.push(json!({"client_id": "b", "message": "not for a"})).await;
    server.push(json!({"topic": "news", "message": "m3"})).await;
    server.push(json!({"topic": "sport", "message": "not joined"})).await;
    server.push(json!({"broadcast": true, "message": "m4"})).await;

    let mut resumed = server.open_stream("/sse?client_id=a&topic=news", Some(&seen)).await;
    for expected in ["m2", "m3", "m4"] {
        assert_eq!(resumed.next_data().await, expected);
    }
    server.push(json!({"client_id": "a", "message": "live"})).await;
    assert_eq!(resumed.next_data().await, "live");
}

#[tokio::test]
async fn a_client_resumes_by_query_and_the_header_wins_over_it() {
    let server = TestServer::start().await;
    let (first, _) = server.push(json!({"client_id": "a", "message": "m1"})).await;
    let (second, _) = server.push(json!({"client_id": "a", "message": "m2"})).await;
    server.push(json!({"client_id": "a", "message": "m3"})).await;

    let mut by_query = server.subscribe(&format!("client_id=a&last_event_id={first}")).await;
    assert_eq!(by_query.next_data().await, "m2");
    assert_eq!(by_query.next_data().await, "m3");

    // An EventSource reconnecting keeps its URL but sends the newer id as a header.
    let path = format!("/sse?client_id=a&last_event_id={first}");
    let mut both = server.open_stream(&path, Some(&second)).await;
    assert_eq!(both.next_data().await, "m3");
}

#[tokio::test]
async fn an_empty_or_blank_last_event_id_header_counts_as_absent() {
    // The field report: an empty header hid the query's id, so nothing was replayed
    // and the position marker moved the client past what it missed for good.
    let server = TestServer::start().await;
    let (first, _) = server.push(json!({"client_id": "a", "message": "m1"})).await;
    server.push(json!({"client_id": "a", "message": "m2"})).await;
    for blank in ["", " ", "\t", "  \t "] {
        let path = format!("/sse?client_id=a&last_event_id={first}");
        let mut resumed = server.open_stream(&path, Some(blank)).await;
        assert_eq!(resumed.next_data().await, "m2", "header {blank:?}");
    }
}

#[tokio::test]
async fn the_polyfills_parameter_resumes_and_outranks_the_pages_own() {
    let server = TestServer::start().await;
    let (first, _) = server.push(json!({"client_id": "a", "message": "m1"})).await;
    let (second, _) = server.push(json!({"client_id": "a", "message": "m2"})).await;
    server.push(json!({"client_id": "a", "message": "m3"})).await;

    let mut polyfill = server.subscribe(&format!("client_id=a&lastEventId={first}")).await;
    assert_eq!(polyfill.next_data().await, "m2");
    // event-source-polyfill appends the newer id to the URL the page opened.
    let query = format!("client_id=a&last_event_id={first}&lastEventId={second}");
    let mut reconnected = server.subscribe(&query).await;
    assert_eq!(reconnected.next_data().await, "m3");
    // ...and a blank one does not hide the page's.
    let query = format!("client_id=a&last_event_id={first}&lastEventId=");
    let mut blank = server.subscribe(&query).await;
    assert_eq!(blank.next_data().await, "m2");
    // The header still wins over both.
    let path = format!("/sse?client_id=a&lastEventId={first}");
    let mut header = server.open_stream(&path, Some(&second)).await;
    assert_eq!(header.next_data().await, "m3");
}

#[tokio::test]
async fn a_position_stated_twice_is_refused() {
    let server = TestServer::start().await;
    for query in ["last_event_id=x-1-c&last_event_id=x-2-c", "lastEventId=x-1-c&lastEventId=x-2-c"]
    {
        let (status, body) = server.get(&format!("/sse?client_id=a&{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body["error"].as_str().unwrap().contains("at most once"), "{body}");
    }
    let response = server
        .http
        .get(server.url("/sse?client_id=a"))
        .header("last-event-id", "x-1-c")
        .header("last-event-id", "x-2-c")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_task_stream_resumes_from_any_carrier_of_the_position() {
    let server = TestServer::start().await;
    let (_, task) = server.post("/jobs", json!({"title": "t", "total": 3})).await;
    let id = task["id"].as_str().unwrap();
    server.post(&format!("/jobs/{id}/progress"), json!({"step": 1})).await;
    // Event 1 is the step-0 announcement; event 2 is step 1.
    for (query, header) in [("lastEventId=1", None), ("last_event_id=1", Some("")), ("", Some("1"))]
    {
        let path = format!("/jobs/{id}/events?{query}");
        let mut stream = server.open_stream(&path, header).await;
        let event = stream.next().await;
        assert_eq!(
            (event.id.as_str(), event.event.as_str()),
            ("2", "progress"),
            "{query} {header:?}"
        );
    }
    // An id this task never gave (not plain digits, or past its end) replays it all.
    for unknown in ["+1", "1.0", "99"] {
        let mut stream = server.open_stream(&format!("/jobs/{id}/events"), Some(unknown)).await;
        assert_eq!(stream.next().await.id, "1", "{unknown:?}");
    }
}

#[tokio::test]
async fn without_an_id_nothing_is_replayed() {
    let server = TestServer::start().await;
    server.push(json!({"client_id": "a", "message": "old"})).await;
    let mut client = server.subscribe("client_id=a").await;
    server.push(json!({"client_id": "a", "message": "new"})).await;
    assert_eq!(client.next_data().await, "new");
}

/// Reads until `count` messages (numbered payloads) have arrived, or the stream ends.
async fn read_numbers(
    stream: &mut SseClient,
    count: usize,
    into: &mut Vec<u64>,
    last_id: &mut String,
) {
    for _ in 0..count {
        let event = stream.next().await;
        assert_ne!(event.event, "gap", "no message may be lost: {event:?}");
        into.push(event.data.parse().expect("a number"));
        *last_id = event.id;
    }
}

#[tokio::test]
async fn resuming_while_pushes_keep_arriving_loses_and_repeats_nothing() {
    let server = Arc::new(TestServer::start_with(&["--history", "10000"]).await);
    for round in 0..20 {
        let client = format!("racer{round}");
        let total: u64 = 150;
        let mut stream = server.subscribe(&format!("client_id={client}")).await;
        let pusher = tokio::spawn({
            let server = server.clone();
            let client = client.clone();
            async move {
                for n in 0..total {
                    server.push(json!({"client_id": client, "message": n})).await;
                }
            }
        });
        let mut received = Vec::new();
        let mut last_id = String::new();
        // Reconnect every few messages, while the pusher keeps going.
        while received.len() < total as usize {
            let batch = (round % 7 + 3).min(total as usize - received.len());
            read_numbers(&mut stream, batch, &mut received, &mut last_id).await;
            drop(stream);
            let path = format!("/sse?client_id={client}");
            stream = server.open_stream(&path, Some(&last_id)).await;
        }
        pusher.await.unwrap();
        let expected: Vec<u64> = (0..total).collect();
        assert_eq!(received, expected, "round {round}: every message once, in order");
    }
}

#[tokio::test]
async fn a_gap_is_announced_when_history_was_evicted() {
    let server = TestServer::start_with(&["--history", "2"]).await;
    let (seen, _) = server.push(json!({"client_id": "a", "message": "m1"})).await;
    for n in 2..=5 {
        server.push(json!({"client_id": "a", "message": format!("m{n}")})).await;
    }
    let mut resumed = server.open_stream("/sse?client_id=a", Some(&seen)).await;
    let gap = resumed.next().await;
    assert_eq!(gap.event, "gap");
    let data: Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(data, json!({"last_event_id": seen, "reason": "evicted"}));
    assert_eq!(resumed.next_data().await, "m4");
    assert_eq!(resumed.next_data().await, "m5");
    assert_eq!(server.state.hub.metrics().gaps(), 1);
}

#[tokio::test]
async fn an_unknown_id_gets_a_gap_then_everything_held() {
    let server = TestServer::start().await;
    server.push(json!({"client_id": "a", "message": "since restart"})).await;
    // An id from a history that no longer exists (this node restarted).
    let mut resumed = server.open_stream("/sse?client_id=a", Some("0badc0de-41-c")).await;
    let gap = resumed.next().await;
    assert_eq!(gap.event, "gap");
    assert_eq!(serde_json::from_str::<Value>(&gap.data).unwrap()["reason"], "unknown");
    assert_eq!(resumed.next_data().await, "since restart");

    let mut garbage = server.open_stream("/sse?client_id=a", Some("not-an-id")).await;
    assert_eq!(garbage.next().await.event, "gap");
}

#[tokio::test]
async fn the_position_marker_lets_a_client_that_saw_nothing_resume() {
    let server = TestServer::start().await;
    server.push(json!({"client_id": "other", "message": "x"})).await;
    let response = server.http.get(server.url("/sse?client_id=quiet")).send().await.unwrap();
    // Read with the parser directly: SseClient skips the marker, as `onmessage` would.
    let mut events = response.bytes_stream().eventsource();
    let marker = tokio::time::timeout(crate::support::PATIENCE, events.next())
        .await
        .expect("the marker comes at once")
        .expect("an event")
        .expect("parsable");
    assert_eq!((marker.event.as_str(), marker.data.as_str()), (herald::sse::POSITION_EVENT, ""));
    assert!(marker.id.ends_with("-1-p"), "{marker:?}");
    drop(events);

    server.push(json!({"client_id": "quiet", "message": "while away"})).await;
    let mut resumed = server.open_stream("/sse?client_id=quiet", Some(&marker.id)).await;
    assert_eq!(resumed.next_data().await, "while away");
}

#[tokio::test]
async fn an_operator_disconnect_ends_the_streams_and_the_client_resumes() {
    let server = TestServer::start().await;
    let mut tab1 = server.subscribe("client_id=kick").await;
    let mut tab2 = server.subscribe("client_id=kick").await;
    let _other = server.subscribe("client_id=stay").await;
    let (seen, _) = server.push(json!({"client_id": "kick", "message": "before"})).await;
    tab1.next().await;
    tab2.next().await;

    let response = server.http.delete(server.url("/clients/kick")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"client_id": "kick", "disconnected": 2})
    );
    tab1.expect_end().await;
    tab2.expect_end().await;
    let clients = server.state.hub.clients().await.unwrap();
    assert_eq!(clients.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(), ["stay"]);
    assert_eq!(server.state.hub.metrics().disconnects(DisconnectReason::Kicked), 2);

    server.push(json!({"client_id": "kick", "message": "while away"})).await;
    let mut back = server.open_stream("/sse?client_id=kick", Some(&seen)).await;
    assert_eq!(back.next_data().await, "while away");

    let missing = server.http.delete(server.url("/clients/nobody")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let invalid = server.http.delete(server.url("/clients/a%20b")).send().await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_slow_consumer_cut_off_resumes_without_loss() {
    let server = TestServer::start_with(&["--queue-capacity", "4", "--history", "1000"]).await;
    let mut slow = server.subscribe("client_id=slow").await;
    // More than the loopback socket buffers on both sides can hold.
    let total = 400;
    let big = "y".repeat(60 * 1024);
    // The client reads nothing while the messages are pushed, so its socket and then
    // its queue fill up and the server cuts it off.
    for n in 0..total {
        server.push(json!({"client_id": "slow", "message": format!("{n} {big}")})).await;
    }
    let metrics = server.state.hub.metrics();
    eventually(|| async { metrics.disconnects(DisconnectReason::Slow) == 1 }).await;

    let mut received = Vec::new();
    let mut last_id = String::new();
    while let Some(event) = slow.next_or_end().await {
        received.push(event.data.split(' ').next().unwrap().parse::<usize>().unwrap());
        last_id = event.id;
    }
    assert!(received.len() < total, "the stream was cut before the end");
    let mut resumed = server.open_stream("/sse?client_id=slow", Some(&last_id)).await;
    while received.len() < total {
        let event = resumed.next().await;
        assert_ne!(event.event, "gap");
        received.push(event.data.split(' ').next().unwrap().parse::<usize>().unwrap());
    }
    assert_eq!(received, (0..total).collect::<Vec<_>>());
}

#[tokio::test]
async fn metrics_count_replays_gaps_and_history() {
    let server = TestServer::start_with(&["--history", "1"]).await;
    let (first, _) = server.push(json!({"client_id": "a", "message": "1"})).await;
    server.push(json!({"client_id": "a", "message": "2"})).await;
    server.push(json!({"client_id": "a", "message": "3"})).await;
    let mut resumed = server.open_stream("/sse?client_id=a", Some(&first)).await;
    assert_eq!(resumed.next().await.event, "gap");
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "herald_replays_total 1",
        "herald_replayed_messages_total 1",
        "herald_gaps_total 1",
        "herald_history_messages 1",
        "herald_clients 1",
        "herald_publish_duration_seconds_count 3",
        "herald_messages_published_total{target=\"client\"} 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}
