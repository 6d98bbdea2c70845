//! Streams per second on one connection: open, negotiate `/echo/1.0.0`, echo one
//! byte, half-close both ways; one after the other.

use crate::stack::{BenchResult, Node, Security, Stack, ECHO};
use crate::stats::Samples;
use crate::wire;
use std::time::Instant;

/// `count` sequential echo streams per run, `runs` runs; TCP + Noise + yamux, loopback.
pub async fn streams<S: Stack>(count: usize, runs: usize) -> BenchResult<Samples> {
    let (server, target) = S::server(Security::Noise).await?;
    let client = S::client(Security::Noise).await?;
    let conn = client.dial(target).await?;
    for _ in 0..count.min(100) {
        let mut stream = client.open(&conn, ECHO).await?;
        wire::echo_once(&mut stream).await?;
    }
    let mut samples = Samples::default();
    for _ in 0..runs {
        let started = Instant::now();
        for _ in 0..count {
            let mut stream = client.open(&conn, ECHO).await?;
            wire::echo_once(&mut stream).await?;
        }
        samples.push(count as f64 / started.elapsed().as_secs_f64());
    }
    client.close(conn).await;
    client.shutdown().await;
    server.shutdown().await;
    Ok(samples)
}
