//! Ping (`/ipfs/ping/1.0.0`): 32 random bytes echoed back, the round trip timed.
//!
//! The exchange itself ([`ping_once`], [`serve`]) works on any stream; the host serves
//! it (at most 4 inbound streams per peer) and pings with
//! [`Host::ping`](crate::Host::ping), one stream per peer at a time.

use crate::handlers::HandlerOptions;
use crate::host::Inner;
use crate::stream::Stream;
use crate::{book, PingFailure, StreamError};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p_identity::PeerId;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

/// The ping protocol id.
pub const PROTOCOL: &str = "/ipfs/ping/1.0.0";
/// The payload size the spec fixes.
const PAYLOAD_LEN: usize = 32;
/// Inbound ping streams served at once per peer. The spec says a listener SHOULD
/// accept at most 2, but rust-libp2p keeps one ping stream open on every connection,
/// and on a connection whose stream was refused it stops answering our pings too: a
/// hole punch leaves a relayed connection and up to two direct ones (each side's
/// dial), so 2 would make one of them deaf to ping. Each stream costs a 32-byte
/// echo; 4 bounds a peer all the same.
const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// The stream failed.
    #[error("i/o error during ping: {0}")]
    Io(#[from] std::io::Error),
    /// The remote echoed different bytes.
    #[error("the remote echoed a different payload")]
    Mismatch,
}

/// Sends one ping on an open stream and returns the round-trip time.
pub async fn ping_once<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Duration, PingError> {
    let payload: [u8; PAYLOAD_LEN] = rand::random();
    let started = Instant::now();
    stream.write_all(&payload).await?;
    stream.flush().await?;
    let mut echo = [0u8; PAYLOAD_LEN];
    stream.read_exact(&mut echo).await?;
    let rtt = started.elapsed();
    if echo != payload {
        return Err(PingError::Mismatch);
    }
    Ok(rtt)
}

/// Serves pings: echoes every 32-byte payload until the remote closes, then closes.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), PingError> {
    let mut payload = [0u8; PAYLOAD_LEN];
    loop {
        let mut filled = 0;
        while filled < PAYLOAD_LEN {
            let n = stream.read(&mut payload[filled..]).await?;
            if n == 0 {
                if filled == 0 {
                    stream.close().await?;
                    return Ok(());
                }
                return Err(PingError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            filled += n;
        }
        stream.write_all(&payload).await?;
        stream.flush().await?;
    }
}

impl Inner {
    /// Serves ping: at most [`MAX_INBOUND_STREAMS_PER_PEER`] streams per peer at
    /// once; more get `na`.
    pub(crate) fn serve_ping(&self) {
        self.handlers.insert_exact(
            PROTOCOL.to_string(),
            Arc::new(move |mut stream: Stream| {
                Box::pin(async move {
                    if let Err(e) = serve(&mut stream).await {
                        debug!(error = %e, "serving ping failed");
                    }
                })
            }),
            // Echoing 32 bytes is safe to run twice: ping may be served in 0-RTT.
            HandlerOptions::default()
                .with_max_inbound_streams_per_peer(Some(MAX_INBOUND_STREAMS_PER_PEER))
                .with_replayable(true),
        );
    }

    /// Pings `peer` once over the stream `open` opens (connecting first if needed),
    /// one ping stream per peer at a time, and records the round-trip time in the
    /// peerstore. `open` runs once the peer's ping lock is held, within the timeout.
    pub(crate) async fn ping(
        &self,
        peer: PeerId,
        open: impl Future<Output = Result<Stream, StreamError>>,
    ) -> Result<Duration, PingFailure> {
        let lock = {
            let mut state = self.lock();
            state.ping_locks.entry(peer).or_default().clone()
        };
        let guard = lock.lock().await;
        let timeout = self.config.protocol_timeout;
        let run = async {
            let mut stream = open.await?;
            let rtt = ping_once(&mut stream).await?;
            let _ = stream.close().await;
            Ok::<_, PingFailure>(rtt)
        };
        let result = tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| PingFailure::Timeout(timeout))
            .and_then(|r| r);
        drop(guard);
        self.hooks.ping(result.as_ref().ok().copied());
        if self.connection_to(&peer).is_none() {
            // The lock map only keeps entries of connected peers (removed on the last
            // disconnect); a ping that found no connection must not leave one behind.
            self.lock().ping_locks.remove(&peer);
        }
        let rtt = result?;
        book::record_latency(&self.writer, &peer, rtt).await;
        Ok(rtt)
    }
}
