//! Helpers shared by the `upgrade_*` tests (included with `#[path]`; as a test
//! target of its own it holds no tests).

#![allow(dead_code)]

use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_upgrader::{BoxedIo, MuxedConnection, SecurityUpgrade, StreamMuxer, Upgrader};

/// The security protocols weft ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sec {
    /// `/noise`.
    Noise,
    /// `/tls/1.0.0`.
    Tls,
}

/// weft's implementation of `sec` for `keypair`.
pub fn security(sec: Sec, keypair: &Keypair) -> Arc<dyn SecurityUpgrade> {
    match sec {
        Sec::Noise => Arc::new(weft_security_noise::Noise::new(keypair).unwrap()),
        Sec::Tls => Arc::new(weft_security_tls::TlsUpgrade::new(keypair.clone())),
    }
}

/// weft's yamux.
pub fn yamux() -> Arc<dyn StreamMuxer> {
    Arc::new(weft_muxer_yamux::Yamux::new())
}

/// A weft upgrader with one security protocol and yamux.
pub fn upgrader(sec: Sec, keypair: &Keypair, inline: bool, lazy: bool) -> Upgrader {
    Upgrader::builder()
        .security(security(sec, keypair))
        .muxer(yamux())
        .inline_muxer_negotiation(inline)
        .lazy(lazy)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Two ends of a real TCP connection on 127.0.0.1, dialer first.
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap().0);
    dialed.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (dialed, accepted)
}

/// A tokio TCP stream as a [`BoxedIo`].
pub fn boxed(stream: TcpStream) -> BoxedIo {
    Box::new(stream.compat())
}

/// Deterministic test data; `seed` makes streams differ.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Reads to EOF, at most `limit` bytes.
pub async fn read_all(io: &mut (impl AsyncRead + Unpin), limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > limit {
            return Err(std::io::Error::other("more data than sent"));
        }
    }
}

/// Accepts every inbound stream and echoes it: read to EOF, write back, close.
pub fn serve_echo(connection: Arc<dyn MuxedConnection>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(mut stream) = connection.accept_stream().await {
            tokio::spawn(async move {
                if let Ok(data) = read_all(&mut stream, 1 << 22).await {
                    let _ = stream.write_all(&data).await;
                    let _ = stream.close().await;
                }
            });
        }
    })
}

/// Opens `count` streams at once; each sends its own data, half-closes and checks
/// the echo.
pub async fn echo_many(connection: &Arc<dyn MuxedConnection>, count: u64, seed: u64) {
    let trips = (0..count).map(|i| {
        let connection = connection.clone();
        async move {
            let data = pattern(2000 + (i as usize * 131) % 6000, seed + i);
            let mut stream = connection.open_stream().await.expect("open_stream");
            stream.write_all(&data).await.expect("write");
            stream.close().await.expect("half-close");
            let echoed = read_all(&mut stream, data.len()).await.expect("read echo");
            assert!(echoed == data, "stream {i}: echo differs");
        }
    });
    tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(trips))
        .await
        .expect("echo streams timed out");
}
