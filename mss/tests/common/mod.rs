//! Helpers shared by the integration tests.
#![allow(dead_code)]

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// One encoded message, built by hand (not with the crate's codec) for texts shorter
/// than 127 bytes.
pub fn frame(text: &str) -> Vec<u8> {
    let len = text.len() + 1;
    assert!(len < 128);
    let mut out = vec![len as u8];
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
    out
}

/// Several hand-encoded messages, concatenated.
pub fn frames(texts: &[&str]) -> Vec<u8> {
    texts.iter().flat_map(|t| frame(t)).collect()
}

/// An in-memory duplex pipe, as futures-io streams.
pub fn duplex() -> (Compat<DuplexStream>, Compat<DuplexStream>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (a.compat(), b.compat())
}

/// A connected TCP pair on 127.0.0.1: (dialer side, listener side).
pub async fn tcp_pair() -> (Compat<TcpStream>, Compat<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.unwrap();
    let (accepted, _) = accepted.unwrap();
    dialed.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (dialed.compat(), accepted.compat())
}

/// Reads exactly `n` bytes.
pub async fn read_n<R: AsyncRead + Unpin>(io: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    io.read_exact(&mut buf).await.unwrap();
    buf
}

/// Wraps a stream and records the bytes of every successful `poll_write` call.
pub struct Recording<T> {
    inner: T,
    pub writes: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<T> Recording<T> {
    pub fn new(inner: T) -> (Self, Arc<Mutex<Vec<Vec<u8>>>>) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        (
            Recording {
                inner,
                writes: writes.clone(),
            },
            writes,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recording<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recording<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            self.writes.lock().unwrap().push(buf[..*n].to_vec());
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
