//! Connection establishment: full dials per second (sequential and in parallel), and
//! the time from dial to the first response byte through the delaying relay.

use crate::stack::{path, BenchResult, Node, Security, Stack, PERF};
use crate::stats::Samples;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};

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
        let mut stream = client.open(&conn, PERF).await?;
        stream.write_all(&1u64.to_be_bytes()).await?;
        stream.close().await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        let elapsed = started.elapsed();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await?;
        drop(stream);
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
