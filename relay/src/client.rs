//! The client side: reserving a slot in a relay (and when to renew it), connecting
//! to a peer through a relay, and accepting the relay's stop stream as the target.
//!
//! Each function takes a stream already opened and negotiated to the right protocol
//! (`hop` to the relay, or the inbound `stop` stream from it); opening streams is the
//! host's business.

use crate::circuit::Circuit;
use crate::codec::{read_message, write_message, CodecError};
use crate::error::{ClientError, Step};
use crate::proto::{HopMessage, HopType, Limit, Peer, Status, StopMessage, StopType};
use crate::voucher::{self, VerifiedVoucher};
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::debug;
use weft_upgrader::BoxedStream;

/// A reservation the relay granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationInfo {
    /// The relay.
    pub relay: PeerId,
    /// When it ends: UNIX time in seconds, UTC.
    pub expire: u64,
    /// The relay's addresses (each ending in `/p2p/<relay>`), to advertise with
    /// `/p2p-circuit` appended.
    pub addrs: Vec<Multiaddr>,
    /// The limits of circuits to us (`None`: the relay announced none).
    pub limit: Option<Limit>,
    /// The relay's voucher, checked, if it sent one.
    pub voucher: Option<VerifiedVoucher>,
}

impl ReservationInfo {
    /// How long to wait before renewing, seen from `now`: see [`renewal_delay`].
    pub fn renew_after(&self, now: SystemTime) -> Duration {
        renewal_delay(self.expire, now)
    }

    /// The circuit addresses at which peers reach `local` through this relay:
    /// each relay address with `/p2p-circuit` appended.
    pub fn circuit_addrs(&self) -> Vec<Multiaddr> {
        self.addrs
            .iter()
            .map(|a| a.clone().with(Protocol::P2pCircuit))
            .collect()
    }
}

/// When to renew a reservation that ends at `expire` (UNIX seconds): after three
/// quarters of the time left, and never sooner than one second from now (nor later
/// than the expiry itself).
pub fn renewal_delay(expire: u64, now: SystemTime) -> Duration {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let left = Duration::from_secs(expire).saturating_sub(now);
    (left * 3 / 4).max(Duration::from_secs(1).min(left))
}

async fn within<T>(
    step: Step,
    timeout: Duration,
    work: impl Future<Output = Result<T, CodecError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map_err(|source| ClientError::Codec { step, source }),
        Err(_) => Err(ClientError::Timeout {
            step,
            after: timeout,
        }),
    }
}

fn status_of(step: Step, status: Option<i32>) -> Result<Status, ClientError> {
    status
        .and_then(|s| Status::try_from(s).ok())
        .ok_or(ClientError::Malformed {
            step,
            reason: "no known status",
        })
}

/// Reserves a slot at `relay` over `stream` (a hop stream to it), as `local`.
///
/// The answer's addresses that do not decode are skipped; each gets the relay's
/// `/p2p/` suffix if it lacks one. A voucher is checked when present.
///
/// # Errors
///
/// [`ClientError`]: the exchange failed or timed out, the relay refused, or its
/// answer or voucher is malformed.
pub async fn reserve<S>(
    stream: &mut S,
    relay: PeerId,
    local: PeerId,
    timeout: Duration,
) -> Result<ReservationInfo, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let step = Step::Reserve;
    let request = HopMessage {
        r#type: Some(HopType::Reserve as i32),
        ..Default::default()
    };
    let answer: HopMessage = within(step, timeout, async {
        write_message(stream, &request).await?;
        read_message(stream).await
    })
    .await?;
    if answer.r#type != Some(HopType::Status as i32) {
        return Err(ClientError::Malformed {
            step,
            reason: "the answer is not a STATUS",
        });
    }
    let status = status_of(step, answer.status)?;
    if status != Status::Ok {
        return Err(ClientError::Refused { step, status });
    }
    let reservation = answer.reservation.ok_or(ClientError::Malformed {
        step,
        reason: "an OK without a reservation",
    })?;
    let expire = reservation.expire.ok_or(ClientError::Malformed {
        step,
        reason: "a reservation without an expiry",
    })?;
    let addrs = reservation
        .addrs
        .into_iter()
        .filter_map(|bytes| Multiaddr::try_from(bytes).ok())
        .map(|addr| with_peer(addr, relay))
        .collect();
    let voucher = match reservation.voucher {
        Some(bytes) => Some(voucher::verify(&bytes, relay, local)?),
        None => None,
    };
    // The relay closes its side; we are done with ours.
    let _ = stream.close().await;
    Ok(ReservationInfo {
        relay,
        expire,
        addrs,
        limit: answer.limit,
        voucher,
    })
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) if p == peer => addr,
        _ => addr.with(Protocol::P2p(peer)),
    }
}

/// Connects to `target` through `relay` over `stream` (a hop stream to the relay);
/// the stream becomes the circuit, on which we are the dialer.
///
/// # Errors
///
/// [`ClientError`]: the exchange failed or timed out, or the relay refused
/// ([`Status::NoReservation`] when the target holds none).
pub async fn connect(
    mut stream: BoxedStream,
    relay: PeerId,
    target: PeerId,
    timeout: Duration,
) -> Result<Circuit, ClientError> {
    let step = Step::Connect;
    let request = HopMessage {
        r#type: Some(HopType::Connect as i32),
        peer: Some(Peer {
            id: Some(target.to_bytes()),
            addrs: Vec::new(),
        }),
        ..Default::default()
    };
    let answer: HopMessage = within(step, timeout, async {
        write_message(&mut stream, &request).await?;
        read_message(&mut stream).await
    })
    .await?;
    if answer.r#type != Some(HopType::Status as i32) {
        return Err(ClientError::Malformed {
            step,
            reason: "the answer is not a STATUS",
        });
    }
    let status = status_of(step, answer.status)?;
    if status != Status::Ok {
        return Err(ClientError::Refused { step, status });
    }
    debug!(%relay, %target, limit = ?answer.limit, "circuit open");
    Ok(Circuit::new(stream, relay, target, answer.limit))
}

/// A relay's stop CONNECT, read and not answered yet.
pub struct StopRequest {
    stream: BoxedStream,
    relay: PeerId,
    source: PeerId,
    limit: Option<Limit>,
    timeout: Duration,
}

impl std::fmt::Debug for StopRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopRequest")
            .field("relay", &self.relay)
            .field("source", &self.source)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl StopRequest {
    /// The peer that initiated the circuit.
    pub fn source(&self) -> PeerId {
        self.source
    }

    /// The relay.
    pub fn relay(&self) -> PeerId {
        self.relay
    }

    /// The limits the relay applies.
    pub fn limit(&self) -> Option<Limit> {
        self.limit
    }

    /// Accepts: answers OK; the stream becomes the circuit, on which we are the
    /// listener.
    ///
    /// # Errors
    ///
    /// [`ClientError`] when the answer cannot be written in time.
    pub async fn accept(mut self) -> Result<Circuit, ClientError> {
        answer_stop(&mut self.stream, Status::Ok, self.timeout).await?;
        Ok(Circuit::new(
            self.stream,
            self.relay,
            self.source,
            self.limit,
        ))
    }

    /// Refuses with `status` (for example [`Status::ConnectionFailed`]).
    ///
    /// # Errors
    ///
    /// [`ClientError`] when the answer cannot be written in time.
    pub async fn deny(mut self, status: Status) -> Result<(), ClientError> {
        answer_stop(&mut self.stream, status, self.timeout).await?;
        let _ = self.stream.close().await;
        Ok(())
    }
}

async fn answer_stop(
    stream: &mut BoxedStream,
    status: Status,
    timeout: Duration,
) -> Result<(), ClientError> {
    let answer = StopMessage {
        r#type: Some(StopType::Status as i32),
        status: Some(status as i32),
        ..Default::default()
    };
    within(Step::StopAnswer, timeout, write_message(stream, &answer)).await
}

/// Reads the relay's stop CONNECT from `stream` (an inbound stop stream from
/// `relay`). A malformed request is answered with [`Status::MalformedMessage`] or
/// [`Status::UnexpectedMessage`] before the error returns.
///
/// # Errors
///
/// [`ClientError`]: the read failed or timed out, or the request is malformed.
pub async fn read_stop(
    mut stream: BoxedStream,
    relay: PeerId,
    timeout: Duration,
) -> Result<StopRequest, ClientError> {
    let step = Step::StopRequest;
    let request: StopMessage = within(step, timeout, read_message(&mut stream)).await?;
    let (status, reason) = if request.r#type != Some(StopType::Connect as i32) {
        (Status::UnexpectedMessage, "not a CONNECT")
    } else if let Some(source) = request
        .peer
        .and_then(|p| p.id)
        .and_then(|id| PeerId::from_bytes(&id).ok())
    {
        return Ok(StopRequest {
            stream,
            relay,
            source,
            limit: request.limit,
            timeout,
        });
    } else {
        (
            Status::MalformedMessage,
            "a CONNECT without a valid peer id",
        )
    };
    let _ = answer_stop(&mut stream, status, timeout).await;
    Err(ClientError::Malformed { step, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_three_quarters_of_the_time_left() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(renewal_delay(1_000 + 3600, now), Duration::from_secs(2700));
        assert_eq!(renewal_delay(1_002, now), Duration::from_millis(1500));
        // Close to the end: a second, not a busy loop; past the end: at once.
        assert_eq!(renewal_delay(1_001, now), Duration::from_secs(1));
        assert_eq!(renewal_delay(900, now), Duration::ZERO);
    }

    #[test]
    fn relay_addresses_get_the_relay_suffix_once() {
        let relay = PeerId::random();
        let bare: Multiaddr = "/ip4/1.2.3.4/tcp/1".parse().unwrap();
        let named = bare.clone().with(Protocol::P2p(relay));
        assert_eq!(with_peer(bare, relay), named);
        assert_eq!(with_peer(named.clone(), relay), named);
        let info = ReservationInfo {
            relay,
            expire: 0,
            addrs: vec![named.clone()],
            limit: None,
            voucher: None,
        };
        assert_eq!(info.circuit_addrs(), vec![named.with(Protocol::P2pCircuit)]);
    }
}
