use reqwest::StatusCode;

use crate::support::{InProcess, TestServer};

#[tokio::test]
async fn clients_lists_connected_clients_with_tabs_and_topics() {
    let server = TestServer::start().await;
    let tab1 = server.subscribe("client_id=alice&topic=news").await;
    let _tab2 = server.subscribe("client_id=alice&topic=sport").await;
    let _bob = server.subscribe("client_id=bob").await;

    let (status, body) = server.get("/clients").await;
    assert_eq!(status, StatusCode::OK);
    let clients = body["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0]["client_id"], "alice");
    assert_eq!(clients[0]["connections"], 2);
    assert_eq!(clients[0]["topics"], serde_json::json!(["news", "sport"]));
    assert!(clients[0]["connected_since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(clients[1]["client_id"], "bob");

    drop(tab1);
    crate::support::eventually(|| async {
        let (_, body) = server.get("/clients").await;
        body["clients"][0]["connections"] == 1
    })
    .await;
}

#[tokio::test]
async fn healthz_and_metrics_answer() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");

    let _client = server.subscribe("client_id=a").await;
    server.push(serde_json::json!({"broadcast": true, "message": "m"})).await;
    let response = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains("\nherald_connections 1\n"), "{text}");
    assert!(text.contains("herald_messages_published_total{target=\"broadcast\"} 1"), "{text}");
    assert!(text.contains("herald_deliveries_total 1"), "{text}");
    for name in ["process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"] {
        assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
    }

    // What Prometheus asks for, it gets: OpenMetrics, ending with `# EOF`.
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let response =
        server.http.get(server.url("/metrics")).header("accept", accept).send().await.unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(response.text().await.unwrap().ends_with("# EOF\n"));
}

/// `/livez` says the process serves; `/readyz` whether it may take new streams — not
/// while it drains, yet the liveness probe still answers then (docs/contract.md §3.4).
#[tokio::test]
async fn the_probes_say_live_and_ready_and_only_readiness_drops_while_draining() {
    let node = InProcess::with(&[]);
    assert_eq!(node.get("/livez").await, (StatusCode::OK, serde_json::json!({"status": "ok"})));
    assert_eq!(node.get("/readyz").await, (StatusCode::OK, serde_json::json!({"status": "ready"})));

    node.state.hub.shutdown();
    assert_eq!(node.get("/livez").await.0, StatusCode::OK);
    assert_eq!(
        node.get("/readyz").await,
        (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "draining"}))
    );
    assert_eq!(node.get("/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn every_node_serves_the_browser_client_as_a_module_any_origin_may_load() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/client/herald.js"))
        .header("Origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header("access-control-allow-origin"), "*");
    let etag = header("etag");
    let script = response.text().await.unwrap();
    let shipped = include_str!("../../../clients/js/herald.js");
    assert_eq!(script, shipped, "the module in clients/js/, as built in");
    assert!(script.contains("export function connect("));
    let again = server
        .http
        .get(server.url("/client/herald.js"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}
