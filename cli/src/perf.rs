//! `weft perf`: run `/perf/1.0.0` against a peer.

use crate::explain;
use crate::options::{build_host, keypair, Security};
use crate::progress::{Counted, Progress};
use serde::Serialize;
use std::time::Duration;
use weft_host::Multiaddr;

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
    let host = build_host(keypair(seed.as_deref())?, &security, true)?;
    let run = async {
        // Without `/p2p/`, the handshake says who the peer is.
        let info = host
            .dial(&addr)
            .await
            .map_err(|e| explain::dial_failed(&addr, &e))?;
        let mut stream = host
            .new_stream(info.peer, &[weft_host::perf::PROTOCOL])
            .await
            .map_err(|e| explain::step_failed(&addr, "opening the perf stream", &e))?;
        // The client's request is the 8-byte size it wants back, then the upload.
        let progress = Progress::new("perf", upload.saturating_add(download).saturating_add(8));
        let r = weft_host::perf::run_client(
            &mut Counted::new(&mut stream, &progress),
            upload,
            download,
        )
        .await
        .map_err(|e| explain::step_failed(&addr, "the perf exchange", &e));
        progress.finish();
        let r = r?;
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
    result.map_err(|_| {
        format!("gave up on {addr} after {timeout:?} (raise --timeout-secs to wait longer)")
    })?
}
