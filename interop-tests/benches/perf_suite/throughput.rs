//! Single-stream throughput, upload and download, on loopback or through the
//! delaying relay (TCP's `DelayRelay`, or for QUIC the `UdpRelay`, which can also drop
//! a seeded fraction of the datagrams); and plain TCP through the same relay as the
//! reference.

use crate::stack::{path, BenchResult, Node, Security, Stack, PERF};
use crate::stats::Samples;
use crate::wire;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_interop_tests::DelayRelay;

/// Upload and download throughput, MiB/s.
#[derive(Debug, Default)]
pub struct Throughput {
    /// Client to server.
    pub upload: Samples,
    /// Server to client.
    pub download: Samples,
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// One connection, `runs` x (upload then download of `bytes`), each on a new stream.
/// Timed from opening the stream to reading the server's EOF. With `delay`, the
/// connection goes through a relay adding `delay` each way (QUIC: and dropping `loss`
/// of the datagrams each way).
pub async fn measure<S: Stack>(
    security: Security,
    delay: Option<Duration>,
    loss: f64,
    bytes: u64,
    runs: usize,
) -> BenchResult<Throughput> {
    let (server, target) = S::server(security).await?;
    let (target, relay) = path(target, delay, loss).await?;
    let client = S::client(security).await?;
    let conn = client.dial(target).await?;
    // Warm-up (not counted): code paths, and yamux's first RTT measurement.
    let mut stream = client.open(&conn, PERF).await?;
    wire::perf(&mut stream, 1 << 20, 1 << 20).await?;
    drop(stream);
    let mut result = Throughput::default();
    for _ in 0..runs {
        for upload in [true, false] {
            let (up, down) = if upload { (bytes, 0) } else { (0, bytes) };
            let started = Instant::now();
            let mut stream = client.open(&conn, PERF).await?;
            wire::perf(&mut stream, up, down).await?;
            let rate = mib_per_s(bytes, started.elapsed());
            if upload {
                result.upload.push(rate);
            } else {
                result.download.push(rate);
            }
        }
    }
    client.close(conn).await;
    client.shutdown().await;
    server.shutdown().await;
    drop(relay);
    Ok(result)
}

/// The same perf exchange over plain TCP (a new connection per transfer, no security,
/// no muxer) through a relay with `delay` each way: what the relay itself allows.
pub async fn plain_tcp(delay: Duration, bytes: u64, runs: usize) -> BenchResult<Throughput> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let _ = weft_host::perf::serve(&mut socket.compat()).await;
            });
        }
    });
    let relay = DelayRelay::start(server_addr, delay).await?;
    let run = |addr: SocketAddr, up: u64, down: u64| async move {
        let started = Instant::now();
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        wire::perf(&mut socket.compat(), up, down).await?;
        Ok::<_, std::io::Error>(mib_per_s(up + down, started.elapsed()))
    };
    let mut result = Throughput::default();
    run(relay.local_addr(), 1 << 20, 1 << 20).await?;
    for _ in 0..runs {
        result.upload.push(run(relay.local_addr(), bytes, 0).await?);
        result
            .download
            .push(run(relay.local_addr(), 0, bytes).await?);
    }
    server.abort();
    Ok(result)
}
