//! Ping (`/ipfs/ping/1.0.0`): 32 random bytes echoed back, the round trip timed.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};

/// The ping protocol id.
pub const PROTOCOL: &str = "/ipfs/ping/1.0.0";
/// The payload size the spec fixes.
pub const PAYLOAD_LEN: usize = 32;
/// Inbound ping streams served at once per peer (the spec: a listener SHOULD accept
/// at most 2).
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 2;

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
