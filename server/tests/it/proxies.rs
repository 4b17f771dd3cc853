//! The reverse-proxy recipes in `deploy/` (nginx, Caddy), each started in front of a
//! real node: events pass through unbuffered, a finished task's 204 passes, heartbeats
//! keep a quiet stream open past the proxy's read timeout, the per-address limits count
//! the client the proxy names (`--trusted-proxy`), and Caddy speaks HTTP/2 to the
//! browser while it reaches Herald over HTTP/1.1 or h2c.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::node::Node;
use crate::support::proxy::{Kind, Proxy};
use crate::support::{self, Api, PATIENCE};

/// The proxy's read timeout towards Herald, in seconds; Herald's heartbeat is shorter.
const READ_TIMEOUT_SECS: u32 = 2;

/// A node that believes its loopback proxy, one stream per client address, and a
/// heartbeat well within the proxy's read timeout; and `kind` in front of it.
async fn node_behind(kind: Kind) -> (Node, Proxy) {
    let node = Node::start(&[
        "--heartbeat",
        "500ms",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--max-connections-per-ip",
        "1",
    ])
    .await;
    let upstream = node.url("").trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(kind, &upstream, READ_TIMEOUT_SECS).await;
    (node, proxy)
}

/// A stream's status, opened through `base` from the local address `from`.
async fn stream_status(base: &str, from: &str, client: &str) -> (StatusCode, reqwest::Response) {
    let http = support::client().local_address(from.parse::<IpAddr>().unwrap()).build().unwrap();
    let response = http.get(format!("{base}/sse?client_id={client}")).send().await.unwrap();
    (response.status(), response)
}

async fn the_recipe_holds(kind: Kind) {
    let (_node, proxy) = node_behind(kind).await;
    let through = Api::new(proxy.base.clone());

    // An event leaves the proxy when Herald writes it.
    let mut stream = through.subscribe("client_id=alice").await;
    let pushed = Instant::now();
    through.push(json!({"client_id": "alice", "message": "at once"})).await;
    assert_eq!(stream.next_data().await, "at once");
    let took = pushed.elapsed();
    assert!(took < Duration::from_millis(100), "{kind:?}: {took:?} from push to event");

    // Quiet for longer than the proxy's read timeout: heartbeats keep the stream open.
    tokio::time::sleep(Duration::from_secs(u64::from(READ_TIMEOUT_SECS) + 1)).await;
    through.push(json!({"client_id": "alice", "message": "still here"})).await;
    assert_eq!(stream.next_data().await, "still here", "{kind:?}");

    // A finished task's stream answers 204 (EventSource stops for good) through it.
    let (status, created) = through.post("/jobs", json!({"title": "t", "total": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    through.post(&format!("/jobs/{id}/finish"), json!({"result": 1})).await;
    let events = through.http.get(through.url(&format!("/jobs/{id}/events")));
    let response = events.header("Last-Event-ID", "2").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{kind:?}");

    // The per-address limit counts the client the proxy names, not the proxy.
    let (first, _held) = stream_status(&proxy.base, "127.0.0.2", "b1").await;
    let (again, _) = stream_status(&proxy.base, "127.0.0.2", "b2").await;
    let (other, _held_too) = stream_status(&proxy.base, "127.0.0.3", "c1").await;
    assert_eq!(
        (first, again, other),
        (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS, StatusCode::OK)
    );
}

#[tokio::test]
async fn the_nginx_recipe_streams_unbuffered_and_names_the_client() {
    the_recipe_holds(Kind::Nginx).await;
}

#[tokio::test]
async fn the_caddy_recipe_streams_unbuffered_and_names_the_client() {
    the_recipe_holds(Kind::Caddy).await;
}

/// The same recipe with Caddy reaching Herald over h2c (HTTP/2 in clear text, with
/// prior knowledge): every client's requests on one upstream connection. (Herald not
/// speaking h2c would fail this with 502s: Caddy does not fall back to HTTP/1.1.)
#[tokio::test]
async fn the_caddy_recipe_holds_over_an_h2c_upstream() {
    the_recipe_holds(Kind::CaddyH2c).await;
}

/// Browsers get HTTP/2 from Caddy (`tls internal`): any number of tabs on one
/// connection, while Caddy reaches Herald over HTTP/1.1. Read with curl, an independent
/// HTTP/2 client.
#[tokio::test]
async fn behind_caddy_with_tls_a_browser_gets_http2_and_its_events() {
    let (node, proxy) = node_behind(Kind::CaddyTls).await;
    let version = tokio::process::Command::new("curl")
        .args(["--http2", "-sk", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg(format!("{}/healthz", proxy.base))
        .output()
        .await
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&version.stdout), "2");

    let mut curl = tokio::process::Command::new("curl")
        .args(["--http2", "-skN", "--max-time", "10"])
        .arg(format!("{}/sse?client_id=h2", proxy.base))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    crate::support::eventually(|| async { node.metric("herald_connections").await == Some(1) })
        .await;
    node.push(json!({"client_id": "h2", "message": "over h2"})).await;
    let received = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "data: over h2" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(received, Ok(true), "the event reached the HTTP/2 client");
}
