//! HTTPS and HTTP/2 on real sockets: a node started with `--tls-cert`/`--tls-key`
//! (certificates made by the test with `openssl`, a private CA), read by clients that
//! trust only that CA; and h2c with prior knowledge on a plain-text node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Version;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject as _;
use serde_json::json;

use crate::support::certs::private_ca;
use crate::support::node::Node;
use crate::support::redis::Tls;
use crate::support::{self, PATIENCE, SseClient};

/// A fresh directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-https-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// A client that trusts only the CA at `ca` and offers only `version` by ALPN.
fn client_trusting(ca: &Path, version: Version) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("read the CA");
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols =
        vec![if version == Version::HTTP_2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    let builder = support::client().tls_backend_preconfigured(config);
    let builder = if version == Version::HTTP_2 { builder } else { builder.http1_only() };
    builder.build().expect("an HTTPS client")
}

/// A node serving HTTPS with `tls`'s certificate, talked to over `version`.
async fn https_node(tls: &Tls, version: Version, args: &[&str]) -> Node {
    let (cert, key) = (tls.cert.to_str().unwrap(), tls.key.to_str().unwrap());
    let mut all = vec!["--tls-cert", cert, "--tls-key", key];
    all.extend_from_slice(args);
    let mut node = Node::start(&all).await;
    assert!(node.url("").starts_with("https://"), "{}", node.url(""));
    node.use_client(client_trusting(&tls.ca, version));
    node
}

/// Opens a client stream and checks it came over `version`.
async fn stream_over(node: &Node, client: &str, version: Version) -> SseClient {
    let response =
        node.http.get(node.url(&format!("/sse?client_id={client}"))).send().await.expect("connect");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), version);
    SseClient::new(response)
}

#[tokio::test]
async fn an_event_stream_over_https_and_http_1_1_carries_a_push() {
    let tls = private_ca(&temp_dir("h1"));
    let node = https_node(&tls, Version::HTTP_11, &[]).await;
    let mut stream = stream_over(&node, "tls-h1", Version::HTTP_11).await;
    let (id, delivered) = node.push(json!({"client_id": "tls-h1", "message": "over TLS"})).await;
    assert_eq!(delivered, 1);
    let event = stream.next().await;
    assert_eq!((event.id, event.data.as_str()), (id, "over TLS"));
}

#[tokio::test]
async fn twelve_streams_share_one_http_2_connection_and_each_gets_its_own_push() {
    let tls = private_ca(&temp_dir("h2-tabs"));
    let node = https_node(&tls, Version::HTTP_2, &[]).await;
    let mut tabs = Vec::new();
    for tab in 0..12 {
        tabs.push(stream_over(&node, &format!("tab{tab}"), Version::HTTP_2).await);
    }
    // The pushes go over the same connection as the streams (reqwest keeps one per
    // origin for HTTP/2), as a page's push form does.
    for tab in 0..12 {
        let (_, delivered) =
            node.push(json!({"client_id": format!("tab{tab}"), "message": tab})).await;
        assert_eq!(delivered, 1);
    }
    for (tab, stream) in tabs.iter_mut().enumerate() {
        assert_eq!(stream.next_data().await, tab.to_string());
    }
    let (status, presence) = node.get("/clients").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(presence["clients"].as_array().map(Vec::len), Some(12), "{presence}");
}

#[tokio::test]
async fn a_task_stream_over_http_2_ends_after_done_and_then_answers_204() {
    let tls = private_ca(&temp_dir("h2-task"));
    let node = https_node(&tls, Version::HTTP_2, &[]).await;
    let (status, created) = node.post("/jobs/demo", json!({"steps": 2, "interval_ms": 20})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let events = created["events"].as_str().expect("events").to_owned();
    let response = node.http.get(node.url(&events)).send().await.expect("connect");
    assert_eq!(response.version(), Version::HTTP_2);
    let mut stream = SseClient::new(response);
    let done = loop {
        let event = stream.next().await;
        if event.event == "done" {
            break event;
        }
        assert_eq!(event.event, "progress", "{event:?}");
    };
    stream.expect_end().await;
    let again = node
        .http
        .get(node.url(&events))
        .header("Last-Event-ID", &done.id)
        .send()
        .await
        .expect("reconnect");
    assert_eq!(again.version(), Version::HTTP_2);
    assert_eq!(again.status(), StatusCode::NO_CONTENT, "EventSource stops on 204");
}

#[tokio::test]
async fn a_push_body_over_the_limit_is_refused_over_http_2_like_over_http_1_1() {
    let tls = private_ca(&temp_dir("h2-limit"));
    let node = https_node(&tls, Version::HTTP_2, &["--max-body-bytes", "1000"]).await;
    let big = "x".repeat(2000);
    let (status, body) = node.post("/push", json!({"broadcast": true, "message": big})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].as_str().is_some_and(|error| error.contains("too large")), "{body}");
    // The connection and its other streams are unharmed.
    let (_, delivered) = node.push(json!({"broadcast": true, "message": "small"})).await;
    assert_eq!(delivered, 0);
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served_on_the_plain_port() {
    let mut node = Node::start(&[]).await;
    node.use_client(support::client().http2_prior_knowledge().build().expect("a client"));
    let mut stream = stream_over(&node, "h2c", Version::HTTP_2).await;
    let (id, _) = node.push(json!({"client_id": "h2c", "message": "through a proxy"})).await;
    let event = stream.next().await;
    assert_eq!((event.id, event.data.as_str()), (id, "through a proxy"));
    // HTTP/1.1 on the same port is untouched.
    let http1 = support::client().build().unwrap();
    let response = http1.get(node.url("/livez")).send().await.unwrap();
    assert_eq!((response.status(), response.version()), (StatusCode::OK, Version::HTTP_11));
}

/// Writes `from`'s certificate and key over the files a node reads, each replaced
/// whole (as certbot and cert-manager do), never half written.
fn install(from: &Tls, cert: &Path, key: &Path) {
    for (source, target) in [(&from.key, key), (&from.cert, cert)] {
        let partial = target.with_extension("new");
        std::fs::copy(source, &partial).expect("copy");
        std::fs::rename(&partial, target).expect("rename");
    }
}

/// Whether a fresh client that trusts only `ca` completes a request.
async fn trusted_by(node: &Node, ca: &Path) -> bool {
    let client = client_trusting(ca, Version::HTTP_2);
    client.get(node.url("/livez")).send().await.is_ok()
}

/// A node serving the first of two certificates (each from its own CA) from files the
/// test may overwrite, and the second certificate.
async fn node_with_renewable_certificate(test: &str) -> (Node, Tls, Tls, PathBuf, PathBuf) {
    let dir = temp_dir(test);
    let (first, second) = (private_ca(&dir.join("first")), private_ca(&dir.join("second")));
    let (cert, key) = (dir.join("live.crt"), dir.join("live.key"));
    install(&first, &cert, &key);
    let live = Tls { cert: cert.clone(), key: key.clone(), ca: first.ca.clone() };
    let node = https_node(&live, Version::HTTP_2, &[]).await;
    assert!(trusted_by(&node, &first.ca).await);
    assert!(!trusted_by(&node, &second.ca).await, "the second CA is not served yet");
    (node, first, second, cert, key)
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_sighup_and_open_streams_stay() {
    let (node, first, second, cert, key) = node_with_renewable_certificate("sighup").await;
    let mut open = stream_over(&node, "kept", Version::HTTP_2).await;
    install(&second, &cert, &key);
    node.hangup();
    support::eventually(|| trusted_by(&node, &second.ca)).await;
    assert!(!trusted_by(&node, &first.ca).await, "new handshakes get the new certificate");
    assert!(node.log().contains("loaded the TLS certificate"), "{}", node.log());
    // The stream opened before the reload still works, on its old connection.
    let (_, delivered) = node.push(json!({"client_id": "kept", "message": "still here"})).await;
    assert_eq!(delivered, 1);
    assert_eq!(open.next_data().await, "still here");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_once_its_files_change_without_a_signal() {
    let (node, _, second, cert, key) = node_with_renewable_certificate("mtime").await;
    // Modification times have a granularity: make the change visible.
    tokio::time::sleep(Duration::from_millis(20)).await;
    install(&second, &cert, &key);
    let deadline = tokio::time::Instant::now() + herald::net::RELOAD_CHECK * 2 + PATIENCE;
    while !trusted_by(&node, &second.ca).await {
        assert!(tokio::time::Instant::now() < deadline, "the renewed certificate was not taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_broken_renewal_keeps_the_current_certificate() {
    let (node, first, second, cert, _) = node_with_renewable_certificate("broken").await;
    // The second CA's certificate beside the first one's key: they do not match.
    std::fs::copy(&second.cert, &cert).expect("copy");
    node.hangup();
    support::eventually(|| async { node.log().contains("keeping the current TLS certificate") })
        .await;
    assert!(trusted_by(&node, &first.ca).await);
}

#[tokio::test]
async fn sigterm_sends_goaway_and_ends_http_2_streams() {
    let mut node = Node::start(&["--drain-spread", "0s"]).await;
    let address = node.url("").trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("an h2c handshake");
    let connection = tokio::spawn(connection);
    let request = |path: &str| {
        axum::http::Request::get(format!("http://{address}{path}")).body(()).expect("a request")
    };
    let mut client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request("/sse?client_id=goaway"), true).unwrap();
    let response = tokio::time::timeout(PATIENCE, response).await.expect("answered").unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let opening = body.data().await.expect("the stream's opening").expect("data");
    assert!(String::from_utf8_lossy(&opening).contains("retry:"), "{opening:?}");

    node.terminate();
    // The stream ends cleanly (END_STREAM), not with a reset.
    loop {
        match tokio::time::timeout(PATIENCE, body.data()).await.expect("the stream ends") {
            Some(Ok(bytes)) => {
                let _ = body.flow_control().release_capacity(bytes.len());
            }
            Some(Err(error)) => panic!("the stream was reset: {error}"),
            None => break,
        }
    }
    // The connection was closed with GOAWAY (NO_ERROR): h2 then refuses new requests.
    let refused = match client.ready().await {
        Err(error) => error,
        Ok(mut client) => match client.send_request(request("/livez"), true) {
            Err(error) => error,
            Ok((response, _)) => response.await.expect_err("no request after GOAWAY"),
        },
    };
    assert!(refused.is_go_away(), "{refused:?}");
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR), "{refused:?}");
    let closed = tokio::time::timeout(PATIENCE, connection).await.expect("the connection ends");
    assert!(matches!(closed, Ok(Ok(()))), "a graceful close: {closed:?}");
    assert!(node.wait().await.success());
}

#[tokio::test]
async fn an_idle_http_2_connection_is_closed_after_the_keepalive_timeout() {
    let node = Node::start(&["--keepalive-timeout", "1s"]).await;
    let address = node.url("").trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("an h2c handshake");
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = axum::http::Request::get(format!("http://{address}/livez")).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.expect("answered").status(), StatusCode::OK);
    let started = tokio::time::Instant::now();
    let closed = tokio::time::timeout(PATIENCE, connection).await.expect("closed when idle");
    assert!(matches!(closed, Ok(Ok(()))), "closed with GOAWAY: {closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the timeout");
}

/// `systemctl reload` sends SIGHUP whatever the node serves: without TLS it has nothing
/// to reload, and must not die of it (SIGHUP's default action).
#[tokio::test]
async fn sighup_without_tls_leaves_the_node_serving() {
    let mut node = Node::start(&[]).await;
    node.hangup();
    support::eventually(|| async { node.log().contains("nothing to reload") }).await;
    assert!(node.is_running());
    assert_eq!(node.get("/livez").await.0, StatusCode::OK);
}

/// A peer that opens HTTP/2 and then never answers (not even the PING that follows
/// GOAWAY) is closed all the same: idle limits hold for every peer.
#[tokio::test]
async fn an_http_2_peer_that_never_answers_is_closed_after_the_idle_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::start(&["--header-timeout", "1s"]).await;
    let address = node.url("").trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    // The preface and an empty SETTINGS frame; then silence (no SETTINGS ack, no PING ack).
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut sink = vec![0; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        while tcp.read(&mut sink).await.is_ok_and(|read| read > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "the connection is still open after {PATIENCE:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the idle limit");
}

/// Plain HTTP sent to the HTTPS port gets a readable 400 that says what to do, as from
/// nginx, not TLS alert bytes.
#[tokio::test]
async fn plain_http_on_the_https_port_is_told_to_use_https() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = private_ca(&temp_dir("plain-on-tls"));
    let node = https_node(&tls, Version::HTTP_11, &[]).await;
    let address = node.url("").trim_start_matches("https://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    tcp.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(
        answer
            .ends_with(r#"{"error":"this port speaks HTTPS: use https:// to reach this server"}"#)
    );
}
