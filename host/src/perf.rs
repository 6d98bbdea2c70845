//! Perf (`/perf/1.0.0`): the libp2p throughput protocol.
//!
//! The client writes the number of bytes it wants back (u64, big-endian), uploads any
//! number of bytes, closes its write side, then reads exactly what it asked for. The
//! server reads the count, drains the upload to EOF, and only then sends the bytes and
//! closes. Not registered by default (the spec says it SHOULD NOT be): call
//! [`Host::enable_perf`](crate::Host::enable_perf).

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};

/// The perf protocol id.
pub const PROTOCOL: &str = "/perf/1.0.0";
/// The chunk size used for sending and receiving.
const CHUNK: usize = 64 * 1024;

/// Why a perf run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfError {
    /// The stream failed.
    #[error("i/o error during perf: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent a different number of bytes than asked for.
    #[error("asked for {expected} bytes, received {received}")]
    ShortDownload {
        /// What we asked for.
        expected: u64,
        /// What arrived before EOF.
        received: u64,
    },
}

/// Timings of one perf run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfReport {
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Time from the start to the end of the upload (write side closed).
    pub upload_time: Duration,
    /// Time from the end of the upload to the last downloaded byte.
    pub download_time: Duration,
}

/// Runs the client side on an open stream.
pub async fn run_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    upload: u64,
    download: u64,
) -> Result<PerfReport, PerfError> {
    let started = Instant::now();
    stream.write_all(&download.to_be_bytes()).await?;
    let chunk = vec![0u8; CHUNK];
    let mut left = upload;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    let uploaded_at = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if received > download {
            break;
        }
    }
    if received != download {
        return Err(PerfError::ShortDownload {
            expected: download,
            received,
        });
    }
    Ok(PerfReport {
        uploaded: upload,
        downloaded: received,
        upload_time: uploaded_at - started,
        download_time: uploaded_at.elapsed(),
    })
}

/// Serves one perf stream.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), PerfError> {
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await?;
    let to_send = u64::from_be_bytes(count);
    let mut buf = vec![0u8; CHUNK];
    // Drain the upload fully before sending: the spec forbids sending concurrently.
    while stream.read(&mut buf).await? > 0 {}
    buf.fill(0);
    let mut left = to_send;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    Ok(())
}
