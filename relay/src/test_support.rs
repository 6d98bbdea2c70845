//! Helpers of the unit tests: real yamux streams over TCP on 127.0.0.1.

use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_upgrader::{BoxedStream, Role, StreamMuxer};

/// The two ends of one yamux stream over a TCP connection on 127.0.0.1, opener first.
/// The connections live until their sockets close.
pub(crate) async fn stream_pair() -> (BoxedStream, BoxedStream) {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let yamux = weft_muxer_yamux::Yamux::new();
    let client = yamux
        .upgrade(Box::new(dialed.unwrap().compat()), Role::Initiator)
        .unwrap();
    let server = yamux
        .upgrade(Box::new(accepted.unwrap().0.compat()), Role::Responder)
        .unwrap();
    let (client_conn, server_conn) = (client.connection.clone(), server.connection.clone());
    for (conn, driver) in [
        (client.connection, client.driver),
        (server.connection, server.driver),
    ] {
        tokio::spawn(async move {
            let _conn = conn;
            let _ = driver.await;
        });
    }
    let mut opened = client_conn.open_stream().await.unwrap();
    // One byte makes the stream known to the other side; it is read off again.
    opened.write_all(b"x").await.unwrap();
    opened.flush().await.unwrap();
    let mut accepted = server_conn.accept_stream().await.unwrap();
    let mut byte = [0u8; 1];
    accepted.read_exact(&mut byte).await.unwrap();
    (opened, accepted)
}
