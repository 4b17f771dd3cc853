//! Graceful shutdown of the real `herald` binary: SIGTERM ends every stream (so
//! clients reconnect elsewhere and resume) and the process exits within its grace.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{PATIENCE, SseClient};

/// Starts `herald` on a free loopback port and returns it with its base URL.
async fn spawn_herald(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--listen", "127.0.0.1:0", "--log", "info"])
        .args(args)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start herald");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if let Some((_, url)) = line.split_once("listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("herald exited before listening");
    })
    .await
    .expect("herald listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

fn terminate(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_ends_streams_and_exits_within_the_grace_period() {
    let (mut child, url) = spawn_herald(&["--shutdown-grace", "5s"]).await;
    let http = reqwest::Client::new();
    let response = http.get(format!("{url}/sse?client_id=a")).send().await.unwrap();
    let mut stream = SseClient::new(response);
    let push =
        http.post(format!("{url}/push")).json(&json!({"client_id": "a", "message": "last words"}));
    assert_eq!(push.send().await.unwrap().status(), 200);

    terminate(&child);
    assert_eq!(stream.next_data().await, "last words", "accepted messages are still delivered");
    stream.expect_end().await;
    let status = tokio::time::timeout(Duration::from_secs(8), child.wait()).await;
    let status = status.expect("herald exits within its grace period").unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_grace_period_bounds_a_client_that_never_reads() {
    let (mut child, url) =
        spawn_herald(&["--shutdown-grace", "1s", "--queue-capacity", "100000"]).await;
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    // A reader that stops reading: its stream cannot drain, so only the grace period
    // lets the process exit.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let request = b"GET /sse?client_id=stalled HTTP/1.1\r\nHost: x\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stalled, request).await.unwrap();
    let http = reqwest::Client::new();
    let big = "z".repeat(60 * 1024);
    for _ in 0..200 {
        let push = json!({"client_id": "stalled", "message": big});
        let response = http.post(format!("{url}/push")).json(&push).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(8), child.wait()).await;
    assert!(status.expect("herald exits after the grace period").unwrap().success());
    drop(stalled);
}
