//! `weft perf`: run `/perf/1.0.0` against a peer.

use crate::options::{build_host, keypair, Security};
use serde::Serialize;
use std::time::Duration;
use weft_host::{Multiaddr, Protocol};

/// The result of one perf run.
#[derive(Debug, Serialize)]
pub struct PerfResult {
    /// Bytes uploaded.
    pub upload_bytes: u64,
    /// Bytes downloaded.
    pub download_bytes: u64,
    /// Upload time in seconds.
    pub upload_s: f64,
    /// Download time in seconds.
    pub download_s: f64,
    /// Upload throughput in Gbit/s.
    pub upload_gbit_s: f64,
    /// Download throughput in Gbit/s.
    pub download_gbit_s: f64,
    /// The negotiated security protocol.
    pub security: String,
    /// The negotiated muxer.
    pub muxer: String,
}

fn gbit(bytes: u64, d: Duration) -> f64 {
    if d.is_zero() {
        return 0.0;
    }
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

/// Dials and runs one perf exchange.
pub async fn run(
    addr: Multiaddr,
    security: Vec<Security>,
    upload: u64,
    download: u64,
    seed: Option<String>,
    timeout: Duration,
) -> Result<PerfResult, String> {
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        return Err(format!("{addr} has no /p2p/<peer id> suffix"));
    };
    let host = build_host(keypair(seed.as_deref())?, &security, true)?;
    let run = async {
        let info = host
            .dial(&addr)
            .await
            .map_err(|e| format!("dial failed: {e}"))?;
        let mut stream = host
            .new_stream(peer, &[weft_host::perf::PROTOCOL])
            .await
            .map_err(|e| format!("perf stream: {e}"))?;
        let r = weft_host::perf::run_client(&mut stream, upload, download)
            .await
            .map_err(|e| format!("perf: {e}"))?;
        Ok::<_, String>(PerfResult {
            upload_bytes: r.uploaded,
            download_bytes: r.downloaded,
            upload_s: r.upload_time.as_secs_f64(),
            download_s: r.download_time.as_secs_f64(),
            upload_gbit_s: gbit(r.uploaded, r.upload_time),
            download_gbit_s: gbit(r.downloaded, r.download_time),
            security: info.security,
            muxer: info.muxer,
        })
    };
    let result = tokio::time::timeout(timeout, run).await;
    host.shutdown().await;
    result.map_err(|_| format!("gave up after {timeout:?}"))?
}
