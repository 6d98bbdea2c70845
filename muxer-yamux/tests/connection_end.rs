//! The end of a connection wakes every task blocked on one of its streams: a reader
//! waiting for data or a writer waiting for window gets an error (or, on the remote,
//! EOF or an error), never a hang. Covers our own `close()`, the driver dropped
//! mid-close, and the remote's close. Real TCP on 127.0.0.1.

mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::io::ErrorKind;
use std::time::Duration;
use support::*;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};
use weft_muxer_yamux::{YamuxConfig, STREAM_WINDOW};
use weft_upgrader::{BoxedStream, Role};

/// Spawns a task that reads `stream` until it ends; yields the error, or `None` on EOF.
fn spawn_blocked_reader(
    mut stream: BoxedStream,
) -> tokio::task::JoinHandle<Option<std::io::Error>> {
    tokio::spawn(async move {
        let mut buf = [0u8; 32];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    })
}

/// An inbound stream on `server`, opened by `client` with one byte, the byte read.
async fn accepted_stream(
    client: &std::sync::Arc<dyn weft_upgrader::MuxedConnection>,
    server: &std::sync::Arc<dyn weft_upgrader::MuxedConnection>,
) -> (BoxedStream, BoxedStream) {
    let mut outbound = client.open_stream().await.unwrap();
    outbound.write_all(b"x").await.unwrap();
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    let mut byte = [0u8; 1];
    within(5, "first byte", inbound.read_exact(&mut byte))
        .await
        .unwrap();
    (outbound, inbound)
}

#[tokio::test]
async fn our_close_ends_the_remote_readers() {
    let (a, b) = tcp_pair().await;
    let (client, _client_driver) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let (server, _server_driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    let (_outbound, inbound) = accepted_stream(&client, &server).await;
    let reader = spawn_blocked_reader(inbound);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !reader.is_finished(),
        "the remote reader has nothing to read yet"
    );

    within(5, "close", client.close()).await.unwrap();
    // EOF or an error: either way the reader is woken.
    let _ = within(2, "the remote reader to wake", reader)
        .await
        .unwrap();
}

#[tokio::test]
async fn our_close_fails_our_own_blocked_reader() {
    let (a, b) = tcp_pair().await;
    let (client, _client_driver) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let (server, server_driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    // The remote keeps its stream open: only our close can end our reader.
    let (_outbound, inbound) = accepted_stream(&client, &server).await;
    let reader = spawn_blocked_reader(inbound);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished(), "the reader has nothing to read yet");

    within(5, "close", server.close()).await.unwrap();
    within(5, "our driver to finish", server_driver)
        .await
        .unwrap()
        .unwrap();
    let err = within(2, "our reader to fail", reader)
        .await
        .unwrap()
        .expect("an error, not EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
}

#[tokio::test]
async fn a_dropped_driver_fails_our_own_blocked_reader() {
    let (a, b) = tcp_pair().await;
    let (client, _client_driver) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let (server, server_driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    let (_outbound, inbound) = accepted_stream(&client, &server).await;
    let reader = spawn_blocked_reader(inbound);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished(), "the reader has nothing to read yet");

    server_driver.abort();
    assert!(server_driver.await.unwrap_err().is_cancelled());
    let err = within(2, "our reader to fail", reader)
        .await
        .unwrap()
        .expect("an error, not EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    assert!(server.is_closed());
}

/// A TCP pair (ours, stuck) with tiny socket buffers: once the test stops reading
/// the `stuck` end, whatever we write soon stops going out.
async fn tcp_pair_with_a_stuck_end() -> (TcpStream, TcpStream) {
    let listening = TcpSocket::new_v4().unwrap();
    listening.set_recv_buffer_size(4096).unwrap();
    listening.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listening.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let dialing = TcpSocket::new_v4().unwrap();
    dialing.set_send_buffer_size(4096).unwrap();
    let (ours, accepted) = tokio::join!(dialing.connect(addr), listener.accept());
    (ours.unwrap(), accepted.unwrap().0)
}

#[tokio::test]
async fn a_driver_dropped_mid_close_fails_our_own_blocked_reader() {
    // The remote is a raw socket that opens one yamux stream (a bare SYN) and then
    // never reads: our close cannot flush, the driver stays in the middle of it.
    let (ours, mut stuck) = tcp_pair_with_a_stuck_end().await;
    let syn = [0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]; // window update, SYN, stream 1
    stuck.write_all(&syn).await.unwrap();
    let (server, server_driver) = weft_peer(ours, Role::Responder, YamuxConfig::default());
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();

    // Fill the wire: the window (256 KiB) is far more than the socket buffers.
    let chunk = vec![3u8; 16 * 1024];
    let mut written = 0usize;
    while let Ok(result) =
        tokio::time::timeout(Duration::from_millis(200), inbound.write(&chunk)).await
    {
        written += result.unwrap();
        assert!(written <= STREAM_WINDOW, "wrote {written} bytes");
    }
    let reader = spawn_blocked_reader(inbound);
    let closer = tokio::spawn({
        let server = server.clone();
        async move { server.close().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!server_driver.is_finished(), "the close should be stuck");
    assert!(!reader.is_finished(), "the reader has nothing to read");

    server_driver.abort();
    let err = within(2, "our reader to fail", reader)
        .await
        .unwrap()
        .expect("an error, not EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    // The close request ends too, whatever it answers.
    let _ = within(2, "close to return", closer).await.unwrap();
    drop(stuck);
}

#[tokio::test]
async fn our_close_fails_our_writer_blocked_on_the_window() {
    let (a, b) = tcp_pair().await;
    let (client, client_driver) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let (server, _server_driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    // The remote accepts the stream and never reads it: no window comes back.
    let (outbound, _inbound) = accepted_stream(&client, &server).await;
    let writer = tokio::spawn(async move {
        let mut outbound = outbound;
        let chunk = vec![9u8; 16 * 1024];
        let mut written = 0usize;
        loop {
            match outbound.write(&chunk).await {
                Ok(n) => written += n,
                Err(e) => return (written, e),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the writer should wait for window");

    within(5, "close", client.close()).await.unwrap();
    within(5, "our driver to finish", client_driver)
        .await
        .unwrap()
        .unwrap();
    let (written, err) = within(2, "our writer to fail", writer).await.unwrap();
    assert!(written <= STREAM_WINDOW, "wrote {written} bytes");
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
}
