//! Perf (`/perf/1.0.0`): the libp2p throughput protocol.
//!
//! The client writes the number of bytes it wants back (u64, big-endian), uploads any
//! number of bytes, closes its write side, then reads exactly what it asked for. The
//! server reads the count, drains the upload to EOF, and only then sends the bytes and
//! closes. Not registered by default (the spec says it SHOULD NOT be): call
//! [`Host::enable_perf`](crate::Host::enable_perf).
//!
//! A perf server does whatever a stranger asks of it, so [`serve_with`] bounds it by a
//! [`PerfConfig`]: the largest download one request may ask for, the largest upload it
//! reads, and the time one stream may take. [`serve`] uses [`PerfConfig::default`],
//! which still allows the 1 GiB transfers of the perf suite.

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
    /// The client asked for more than [`PerfConfig::max_download`].
    #[error("refused a perf request for {requested} bytes: the limit is {limit}")]
    DownloadTooLarge {
        /// What the client asked for.
        requested: u64,
        /// The configured largest download.
        limit: u64,
    },
    /// The client uploaded more than [`PerfConfig::max_upload`].
    #[error("perf upload passed the limit of {limit} bytes")]
    UploadTooLarge {
        /// The configured largest upload.
        limit: u64,
    },
    /// The stream took longer than [`PerfConfig::stream_timeout`].
    #[error("perf stream took longer than {0:?}")]
    TimedOut(Duration),
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

/// Bounds of the perf server: what one stream may cost us.
///
/// ```
/// use std::time::Duration;
/// use weft_host::perf::PerfConfig;
///
/// let config = PerfConfig::default()
///     .with_max_download(64 << 20)
///     .with_stream_timeout(Duration::from_secs(10));
/// assert_eq!(config.max_download(), 64 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfConfig {
    max_download: u64,
    max_upload: u64,
    stream_timeout: Duration,
}

impl PerfConfig {
    /// Default [`PerfConfig::max_download`]: 1 GiB, the perf suite's transfer size
    /// (a request for exactly this much is served).
    pub const DEFAULT_MAX_DOWNLOAD: u64 = 1 << 30;
    /// Default [`PerfConfig::max_upload`]: 1 GiB, as for downloads. The server never
    /// buffers an upload (it reads into one 64 KiB buffer), so this bounds the time
    /// and bandwidth a client may take, not memory.
    pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;
    /// Default [`PerfConfig::stream_timeout`]: 120 s, enough for 1 GiB each way at
    /// 17 MiB/s, far below what loopback or the perf suite's 60 ms relay reach.
    pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(120);

    /// The largest number of bytes one request may ask for; a larger request is
    /// refused: the server logs it, sends nothing and closes the stream (the client
    /// sees a short download).
    pub fn max_download(&self) -> u64 {
        self.max_download
    }

    /// The most bytes the server reads from one upload; past it the stream is dropped.
    pub fn max_upload(&self) -> u64 {
        self.max_upload
    }

    /// The longest one stream may take, from the first byte read to the close.
    pub fn stream_timeout(&self) -> Duration {
        self.stream_timeout
    }

    /// Sets [`PerfConfig::max_download`].
    pub fn with_max_download(mut self, bytes: u64) -> Self {
        self.max_download = bytes;
        self
    }

    /// Sets [`PerfConfig::max_upload`].
    pub fn with_max_upload(mut self, bytes: u64) -> Self {
        self.max_upload = bytes;
        self
    }

    /// Sets [`PerfConfig::stream_timeout`].
    pub fn with_stream_timeout(mut self, timeout: Duration) -> Self {
        self.stream_timeout = timeout;
        self
    }
}

impl Default for PerfConfig {
    fn default() -> Self {
        Self {
            max_download: Self::DEFAULT_MAX_DOWNLOAD,
            max_upload: Self::DEFAULT_MAX_UPLOAD,
            stream_timeout: Self::DEFAULT_STREAM_TIMEOUT,
        }
    }
}

/// Serves one perf stream within [`PerfConfig::default`].
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), PerfError> {
    serve_with(stream, &PerfConfig::default()).await
}

/// Serves one perf stream within `config`. A refused or timed-out request is logged
/// (`info`) and returned as an error; the caller drops the stream.
pub async fn serve_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &PerfConfig,
) -> Result<(), PerfError> {
    let result =
        match tokio::time::timeout(config.stream_timeout, serve_inner(stream, config)).await {
            Ok(result) => result,
            Err(_) => Err(PerfError::TimedOut(config.stream_timeout)),
        };
    if let Err(
        e @ (PerfError::DownloadTooLarge { .. }
        | PerfError::UploadTooLarge { .. }
        | PerfError::TimedOut(_)),
    ) = &result
    {
        tracing::info!(error = %e, "perf request refused");
    }
    result
}

async fn serve_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &PerfConfig,
) -> Result<(), PerfError> {
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await?;
    let to_send = u64::from_be_bytes(count);
    if to_send > config.max_download {
        // Nothing sent: the client sees its download end short.
        let _ = stream.close().await;
        return Err(PerfError::DownloadTooLarge {
            requested: to_send,
            limit: config.max_download,
        });
    }
    let mut buf = vec![0u8; CHUNK];
    // Drain the upload fully before sending: the spec forbids sending concurrently.
    let mut uploaded = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        uploaded += n as u64;
        if uploaded > config.max_upload {
            return Err(PerfError::UploadTooLarge {
                limit: config.max_upload,
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    const WAIT: Duration = Duration::from_secs(20);

    /// A server on a real TCP socket with `config`; returns its address and the
    /// result of serving the one stream.
    async fn server(
        config: PerfConfig,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Result<(), PerfError>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            serve_with(&mut socket.compat(), &config).await
        });
        (addr, task)
    }

    #[tokio::test]
    async fn serves_within_the_limits() {
        let config = PerfConfig::default().with_max_download(1 << 20);
        let (addr, task) = server(config).await;
        let mut client = TcpStream::connect(addr).await.unwrap().compat();
        let report = tokio::time::timeout(WAIT, run_client(&mut client, 300_000, 1 << 20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report.downloaded, 1 << 20);
        tokio::time::timeout(WAIT, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn refuses_a_download_over_the_limit() {
        let config = PerfConfig::default().with_max_download(1000);
        let (addr, task) = server(config).await;
        let mut client = TcpStream::connect(addr).await.unwrap().compat();
        let err = tokio::time::timeout(WAIT, run_client(&mut client, 0, 1001))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                PerfError::ShortDownload { received: 0, .. } | PerfError::Io(_)
            ),
            "{err:?}"
        );
        let served = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert!(
            matches!(
                served,
                Err(PerfError::DownloadTooLarge {
                    requested: 1001,
                    limit: 1000
                })
            ),
            "{served:?}"
        );
    }

    #[tokio::test]
    async fn the_default_refuses_a_request_over_one_gib() {
        // The request alone decides: the server refuses before any byte is sent.
        let (addr, task) = server(PerfConfig::default()).await;
        let mut client = TcpStream::connect(addr).await.unwrap().compat();
        let err = tokio::time::timeout(WAIT, run_client(&mut client, 0, (1 << 30) + 1))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            err,
            PerfError::ShortDownload { received: 0, .. } | PerfError::Io(_)
        ));
        let served = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert!(matches!(served, Err(PerfError::DownloadTooLarge { .. })));
        assert_eq!(PerfConfig::default().max_download(), 1 << 30);
        assert!(PerfConfig::default().max_upload() >= 1 << 30);
    }

    #[tokio::test]
    async fn stops_reading_an_upload_over_the_limit() {
        let config = PerfConfig::default().with_max_upload(100_000);
        let (addr, task) = server(config).await;
        let mut client = TcpStream::connect(addr).await.unwrap().compat();
        let result = tokio::time::timeout(WAIT, run_client(&mut client, 10 << 20, 10)).await;
        assert!(result.unwrap().is_err());
        let served = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert!(
            matches!(served, Err(PerfError::UploadTooLarge { limit: 100_000 })),
            "{served:?}"
        );
    }

    #[tokio::test]
    async fn times_out_a_stream_that_never_finishes_its_upload() {
        let config = PerfConfig::default().with_stream_timeout(Duration::from_millis(200));
        let (addr, task) = server(config).await;
        let mut client = TcpStream::connect(addr).await.unwrap().compat();
        // The count, then silence with the write side open.
        client.write_all(&10u64.to_be_bytes()).await.unwrap();
        client.flush().await.unwrap();
        let served = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert!(matches!(served, Err(PerfError::TimedOut(_))), "{served:?}");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(read.is_err() || rest.is_empty());
    }
}
