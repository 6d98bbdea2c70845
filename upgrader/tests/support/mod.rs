//! Test-only implementations of the traits: `/plaintext/2.0.0` security and a
//! single-stream "muxer", plus socket helpers.

#![allow(dead_code)] // Each test file uses its own subset.

pub mod plaintext;
pub mod single_stream;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_upgrader::BoxedIo;

/// Two ends of a real TCP connection on 127.0.0.1, dialer first.
pub async fn tcp_pair() -> (BoxedIo, BoxedIo) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.unwrap();
    let accepted = accepted.unwrap().0;
    dialed.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (Box::new(dialed.compat()), Box::new(accepted.compat()))
}
