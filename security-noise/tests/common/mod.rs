//! Helpers shared by the integration tests: TCP pairs on 127.0.0.1, random data,
//! checksummed transfers.
#![allow(dead_code)]

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ring::rand::SecureRandom;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// A connected pair of TCP streams on 127.0.0.1: (dialer side, listener side).
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

/// `len` random bytes from the system RNG.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ring::rand::SystemRandom::new().fill(&mut data).unwrap();
    data
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Writes `data` in `chunk`-sized writes, then closes the write side.
pub async fn send_all<W: AsyncWrite + Unpin>(mut writer: W, data: &[u8], chunk: usize) {
    for piece in data.chunks(chunk) {
        writer.write_all(piece).await.unwrap();
    }
    writer.close().await.unwrap();
}

/// Reads exactly `len` bytes with a streaming SHA-256, returning the digest.
pub async fn receive_digest<R: AsyncRead + Unpin>(mut reader: R, len: usize) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 100_000];
    let mut remaining = len;
    while remaining > 0 {
        let want = remaining.min(buf.len());
        let n = reader.read(&mut buf[..want]).await.unwrap();
        assert!(n > 0, "stream ended with {remaining} bytes still expected");
        context.update(&buf[..n]);
        remaining -= n;
    }
    context.finish().as_ref().to_vec()
}

/// Sends `len` random bytes each way at once over two duplex channels and checks
/// both SHA-256 digests.
pub async fn exchange_checksummed<A, B>(a: A, b: B, len: usize)
where
    A: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let a_data = random_bytes(len);
    let b_data = random_bytes(len);
    let (a_digest, b_digest) = (sha256(&a_data), sha256(&b_data));
    let (a_read, a_write) = a.split();
    let (b_read, b_write) = b.split();
    let a_send = tokio::spawn(async move { send_all(a_write, &a_data, 1 << 20).await });
    let b_send = tokio::spawn(async move { send_all(b_write, &b_data, 100_003).await });
    let a_recv = tokio::spawn(receive_digest(a_read, len));
    let b_recv = tokio::spawn(receive_digest(b_read, len));
    a_send.await.unwrap();
    b_send.await.unwrap();
    assert_eq!(b_recv.await.unwrap(), a_digest, "a -> b corrupted");
    assert_eq!(a_recv.await.unwrap(), b_digest, "b -> a corrupted");
}
