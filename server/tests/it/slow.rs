//! A client that stops reading must never delay the others: its queue is bounded, and
//! past the bound it is disconnected (and counted) while everyone else keeps receiving.

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use crate::support::{TestServer, eventually};
use herald::hub::types::DisconnectReason;

#[tokio::test]
async fn a_stalled_reader_is_cut_off_and_a_fast_one_gets_everything() {
    let server = TestServer::start_with(&["--queue-capacity", "8"]).await;

    // A client that sends its request and then never reads: a small receive buffer
    // makes the server's writes back up quickly.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    stalled.write_all(b"GET /sse?client_id=stalled HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    eventually(|| async { server.state.hub.clients().await.unwrap().len() == 1 }).await;

    let mut fast = server.subscribe("client_id=fast").await;
    let message = "x".repeat(32 * 1024);
    let pushes = 200;
    for n in 0..pushes {
        let (_, delivered) =
            server.push(json!({"broadcast": true, "message": format!("{n} {message}")})).await;
        assert!(delivered >= 1, "the fast client is always delivered to");
        let data = fast.next_data().await;
        assert!(data.starts_with(&format!("{n} ")), "message {n} arrived in order");
    }

    let metrics = server.state.hub.metrics();
    assert_eq!(
        metrics.disconnects(DisconnectReason::Slow),
        1,
        "the stalled client was cut off as slow"
    );
    let clients = server.state.hub.clients().await.unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].client_id.as_str(), "fast");
    drop(stalled);
}
