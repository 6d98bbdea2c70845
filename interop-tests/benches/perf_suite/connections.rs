//! Connection establishment: full dials per second (sequential and in parallel), and
//! the time from dial to the first response byte through the delaying relay.

use crate::stack::{path, BenchResult, Node, Security, Stack, PERF};
use crate::stats::Samples;
use crate::weft_side::Weft;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};
use weft_host::{DialOpts, EarlyData, Protocol};

/// Dials per second: `clients` client nodes, each dialing `per_client` times in a
/// row (dial, upgrade, close and wait until closed), all clients at once; `runs`
/// times. On loopback, with `security` (TCP + Noise + yamux, or QUIC).
pub async fn dials<S: Stack>(
    security: Security,
    clients: usize,
    per_client: usize,
    runs: usize,
) -> BenchResult<Samples> {
    let (server, target) = S::server(security).await?;
    let mut nodes = Vec::with_capacity(clients);
    for _ in 0..clients {
        nodes.push(S::client(security).await?);
    }
    // Warm-up.
    let conn = nodes[0].dial(target).await?;
    nodes[0].close(conn).await;
    let mut samples = Samples::default();
    for _ in 0..runs {
        let started = Instant::now();
        let tasks: Vec<_> = nodes
            .iter()
            .cloned()
            .map(|node| {
                tokio::spawn(async move {
                    for _ in 0..per_client {
                        let conn = node.dial(target).await?;
                        node.close(conn).await;
                    }
                    Ok::<_, crate::stack::BenchError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        samples.push((clients * per_client) as f64 / started.elapsed().as_secs_f64());
    }
    for node in &nodes {
        node.shutdown().await;
    }
    server.shutdown().await;
    Ok(samples)
}

/// Time from starting a dial to reading the first byte of a 1-byte perf download,
/// through a relay adding `delay` each way; a new connection each run.
pub async fn first_byte<S: Stack>(
    security: Security,
    delay: Duration,
    runs: usize,
) -> BenchResult<Samples> {
    let (server, target) = S::server(security).await?;
    let (target, _relay) = path(target, Some(delay), 0.0).await?;
    let client = S::client(security).await?;
    let mut samples = Samples::default();
    for run in 0..=runs {
        let started = Instant::now();
        let conn = client.dial(target).await?;
        let stream = client.open(&conn, PERF).await?;
        let elapsed = perf_first_byte(stream, started).await?;
        client.close(conn).await;
        // The first run warms up (not counted).
        if run > 0 {
            samples.push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    client.shutdown().await;
    server.shutdown().await;
    Ok(samples)
}

/// [`first_byte`] for weft over QUIC on a resumed session: each run reconnects to the
/// same peer (the address names it, so the session ticket of the previous connection
/// applies), with early data, and sends the perf request on an early (0-RTT) stream.
/// The first run, a full handshake that gets the first ticket, is not counted; a run
/// that does not resume with its early data accepted is an error.
pub async fn first_byte_resumed(delay: Duration, runs: usize) -> BenchResult<Samples> {
    let (server, target) = Weft::server(Security::Quic).await?;
    let (target, _relay) = path(target, Some(delay), 0.0).await?;
    let client = Weft::client(Security::Quic).await?;
    let host = client.host();
    let addr = target.multiaddr().with(Protocol::P2p(target.peer));
    let mut samples = Samples::default();
    for run in 0..=runs {
        let started = Instant::now();
        let info = host
            .dial_with(&addr, DialOpts::new().with_early_data(true))
            .await?;
        let stream = host.new_early_stream(info.peer, &[PERF]).await?;
        let elapsed = perf_first_byte(stream, started).await?;
        if !host.handshake_complete(info.id).await {
            return Err(format!("run {run}: the handshake failed").into());
        }
        let session = host
            .session_info(info.id)
            .ok_or_else(|| format!("run {run}: the connection closed"))?;
        if run > 0 {
            if session.resumed != Some(true) || session.early_data != EarlyData::Accepted {
                return Err(format!(
                    "run {run}: resumed {:?}, early data {:?}: not a 0-RTT reconnect",
                    session.resumed, session.early_data
                )
                .into());
            }
            samples.push(elapsed.as_secs_f64() * 1000.0);
        }
        // The listener's session tickets follow its handshake: let them arrive before
        // closing, or the next run finds none.
        let rtt = session.rtt.unwrap_or(delay * 2);
        tokio::time::sleep((rtt * 2).min(Duration::from_secs(1))).await;
        host.disconnect(&info.peer).await;
    }
    client.shutdown().await;
    server.shutdown().await;
    Ok(samples)
}

/// Asks the perf server on `stream` for one byte and reads it: the time from
/// `started` to that byte. The rest of the answer (its end) is read before the stream
/// is dropped.
async fn perf_first_byte<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    started: Instant,
) -> BenchResult<Duration> {
    stream.write_all(&1u64.to_be_bytes()).await?;
    stream.close().await?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    let elapsed = started.elapsed();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    Ok(elapsed)
}
