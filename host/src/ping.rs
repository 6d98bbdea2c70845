//! Ping (`/ipfs/ping/1.0.0`): 32 random bytes echoed back, the round trip timed.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p_identity::PeerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// Counts the inbound ping streams each peer has open, refusing more than a limit.
#[derive(Debug, Clone)]
pub struct PerPeerLimit {
    limit: usize,
    active: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One admitted stream; gives its slot back when dropped.
#[derive(Debug)]
pub struct PerPeerSlot {
    peer: PeerId,
    active: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl PerPeerLimit {
    /// At most `limit` streams per peer.
    pub fn new(limit: usize) -> Self {
        PerPeerLimit {
            limit,
            active: Arc::default(),
        }
    }

    /// A slot for one more stream of `peer`, unless it has `limit` already.
    pub fn try_acquire(&self, peer: PeerId) -> Option<PerPeerSlot> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let count = active.entry(peer).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PerPeerSlot {
            peer,
            active: self.active.clone(),
        })
    }
}

impl Drop for PerPeerSlot {
    fn drop(&mut self) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = active.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                active.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_per_peer_and_slots_come_back() {
        let limit = PerPeerLimit::new(2);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = limit.try_acquire(a).unwrap();
        let _a2 = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none());
        assert!(limit.try_acquire(b).is_some());
        drop(a1);
        assert!(limit.try_acquire(a).is_some());
    }
}
