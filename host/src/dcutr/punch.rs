//! One attempt's simultaneous connect: from the punch time to a direct connection,
//! the attempt's deadline, or the end of the relayed connection.
//!
//! - TCP: both sides dial every TCP address of the other, from their listen port
//!   (port reuse), with the security role of their side; for the attempt, an
//!   inbound TCP connection from the peer's IPs takes that role too
//!   ([`InboundRoles`](crate::inbound_roles)), so whichever SYN lands first (a
//!   simultaneous open, or one side's listener) the roles agree. A peer that is not
//!   weft makes no such promise: our SYN can land on its listener, which waits as a
//!   listener does; as the responder we therefore initiate after all when the peer
//!   says nothing for [`lead_after_silence`] (its own role would have spoken within a
//!   round trip).
//! - QUIC: the responder dials; the initiator sends random datagrams from its
//!   listening socket to each QUIC address of the responder at random 10-200 ms
//!   intervals, so that its NAT lets the responder's dial in, and, unless that
//!   dial landed within [`QUIC_INITIATOR_DIAL_DELAY`], dials the responder from
//!   that socket too (as the QUIC client): behind a symmetric NAT
//!   the responder's dial finds no hole (it goes to the port the NAT chose for the
//!   relay), while ours, from a port nobody predicted, gets through a responder's
//!   NAT that filters by address only. Whichever handshake completes first wins.
//!
//! A direct connection from the peer that lands by any way (a dial of ours, an
//! inbound one) ends the attempt.

use super::DirectConnection;
use crate::conn::ConnState;
use crate::dial::DialOpts;
use crate::events::Event;
use crate::host::Inner;
use crate::transport::{is_circuit, Transport};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::debug;
use weft_dcutr::{quic_punch_interval, AttemptFailure, PunchTransport, Side};

/// How an attempt ended without a direct connection.
#[derive(Debug)]
pub(super) enum PunchError {
    /// The relayed connection closed.
    RelayedClosed,
    /// No direct connection (timed out, or every dial failed).
    Attempt(AttemptFailure),
}

/// How long the QUIC initiator waits after its first punching packets before it
/// dials the responder itself (see the module documentation).
const QUIC_INITIATOR_DIAL_DELAY: Duration = Duration::from_millis(500);

/// How long an attempt whose dials all failed still waits for the peer's connection.
const DIALS_FAILED_GRACE: Duration = Duration::from_secs(2);

/// The least silence after which a TCP punch's responder initiates after all.
const MIN_LEAD_AFTER_SILENCE: Duration = Duration::from_millis(300);

/// How long a TCP punch's responder waits for the peer to speak before it initiates:
/// twice the round trip DCUtR measured, at least [`MIN_LEAD_AFTER_SILENCE`].
fn lead_after_silence(rtt: Option<Duration>) -> Duration {
    rtt.map_or(MIN_LEAD_AFTER_SILENCE, |rtt| rtt.saturating_mul(2))
        .max(MIN_LEAD_AFTER_SILENCE)
}

/// Bytes of one QUIC punching datagram.
const PUNCH_PACKET_LEN: usize = 64;

/// The plan of one attempt, for [`run`].
pub(super) struct Attempt<'a> {
    pub(super) side: Side,
    pub(super) remote: &'a [Multiaddr],
    pub(super) punch_at: Instant,
    pub(super) deadline: Instant,
    /// The RTT measured for this attempt, if any (reported with the connection).
    pub(super) rtt: Option<Duration>,
}

/// The distinct IPs of the TCP addresses among `addrs`.
pub(super) fn tcp_ips(addrs: &[Multiaddr]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in addrs
        .iter()
        .filter(|a| PunchTransport::of(a) == Some(PunchTransport::Tcp))
        .filter_map(crate::dial::classify::leading_ip)
    {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// A usable direct (not relayed) connection to `peer`, the newest.
pub(super) fn direct_connection(inner: &Inner, peer: &PeerId) -> Option<Arc<ConnState>> {
    let state = inner.lock();
    let found = state
        .connections_of(peer)
        .rev()
        .find(|c| c.is_usable() && !is_circuit(&c.remote_addr))
        .cloned();
    found
}

fn direct(conn: &ConnState, rtt: Option<Duration>) -> DirectConnection {
    DirectConnection {
        connection: conn.id,
        remote_addr: conn.remote_addr.clone(),
        transport: PunchTransport::of(&conn.remote_addr),
        rtt,
    }
}

/// Runs one attempt. `events` must have been subscribed before the exchange began,
/// so that a direct connection landing meanwhile is seen.
pub(super) async fn run(
    inner: &Arc<Inner>,
    relayed: &ConnState,
    attempt: Attempt<'_>,
    events: &mut broadcast::Receiver<Event>,
) -> Result<DirectConnection, PunchError> {
    let peer = relayed.peer;
    let role = attempt.side.security_role();
    let mut dials = FuturesUnordered::new();
    let mut quic_targets: Vec<(Arc<dyn Transport>, Multiaddr)> = Vec::new();
    let mut started = false;
    let mut next_packet = tokio::time::Instant::from_std(attempt.punch_at);
    let mut last_error: Option<String> = None;
    let punch_at = tokio::time::Instant::from_std(attempt.punch_at);
    let _promise = inner
        .inbound_roles
        .promise(&tcp_ips(attempt.remote), peer, role);
    let mut deadline = tokio::time::Instant::from_std(attempt.deadline);
    let mut grace = false;
    loop {
        if let Some(conn) = direct_connection(inner, &peer) {
            return Ok(direct(&conn, attempt.rtt));
        }
        // Every dial of ours failed: the peer's may still land (a TCP dial fails
        // when the peer's SYN already made the connection, still upgrading).
        if started && !grace && dials.is_empty() && quic_targets.is_empty() && last_error.is_some()
        {
            grace = true;
            deadline = deadline.min(tokio::time::Instant::now() + DIALS_FAILED_GRACE);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(punch_at), if !started => {
                started = true;
                for addr in attempt.remote {
                    let Some(kind) = PunchTransport::of(addr) else { continue };
                    let Some(transport) = inner.transports.iter().find(|t| t.can_dial(addr)) else {
                        debug!(%addr, "no transport for this address; not punched");
                        continue;
                    };
                    // QUIC's roles follow who sends the first packet: no forced role.
                    let dial_role = match kind {
                        PunchTransport::Tcp => Some(role),
                        PunchTransport::Quic => None,
                    };
                    // The QUIC initiator's own dial waits a little: the responder's
                    // dial, which its packets let in, usually lands first, and a
                    // second connection would only duplicate it.
                    let delay = if kind == PunchTransport::Quic && attempt.side == Side::Initiator {
                        quic_targets.push((transport.clone(), addr.clone()));
                        QUIC_INITIATOR_DIAL_DELAY
                    } else {
                        Duration::ZERO
                    };
                    let inner = inner.clone();
                    let addr = addr.clone();
                    let silence = (kind == PunchTransport::Tcp && role == weft_upgrader::Role::Responder)
                        .then(|| lead_after_silence(attempt.rtt));
                    let opts = DialOpts::new()
                        .with_ignore_backoff(true)
                        .with_role(dial_role)
                        .with_lead_after_silence(silence);
                    let direct_already = inner.clone();
                    // Each dial runs to its end even when the attempt ends first: a
                    // dial dropped halfway through its handshake resets a socket
                    // whose other end may already count it as a connection.
                    let tasks = inner.tasks.clone();
                    dials.push(tasks.spawn(async move {
                        tokio::time::sleep(delay).await;
                        if !delay.is_zero() && direct_connection(&direct_already, &peer).is_some() {
                            return (addr, None);
                        }
                        let r = inner.dial_one(Some(peer), addr.clone(), &opts).await;
                        (addr, Some(r))
                    }));
                }
                debug!(%peer, side = %attempt.side, dials = dials.len(), quic = quic_targets.len(), "punching");
                if dials.is_empty() && quic_targets.is_empty() {
                    last_error = Some("no transport for any of the peer's addresses".to_string());
                }
            }
            _ = tokio::time::sleep_until(next_packet), if started && !quic_targets.is_empty() => {
                for (transport, addr) in &quic_targets {
                    let payload: [u8; PUNCH_PACKET_LEN] = std::array::from_fn(|_| rand::random());
                    if let Err(e) = transport.punch(addr, &payload) {
                        debug!(%addr, error = %e, "punching packet not sent");
                    }
                }
                next_packet = tokio::time::Instant::now() + quic_punch_interval(rand::random());
            }
            Some(joined) = dials.next() => match joined {
                Ok((_, Some(Ok(conn)))) if !is_circuit(&conn.remote_addr) => {
                    return Ok(direct(&conn, attempt.rtt));
                }
                // Skipped (a direct connection came first), or relayed.
                Ok((_, None | Some(Ok(_)))) => {}
                Ok((addr, Some(Err(e)))) => {
                    debug!(%addr, error = %e, "punching dial failed");
                    last_error = Some(format!("{addr}: {e}"));
                }
                Err(e) => {
                    debug!(error = %e, "punching dial task ended");
                    last_error = Some(format!("punching dial task ended: {e}"));
                }
            },
            event = events.recv() => match event {
                Ok(Event::Connected { peer: p, connection, remote_addr, .. })
                    if p == peer && !is_circuit(&remote_addr) =>
                {
                    if let Some(conn) = inner.connection(&connection) {
                        return Ok(direct(&conn, attempt.rtt));
                    }
                }
                Ok(Event::Disconnected { connection, .. }) if connection == relayed.id => {
                    return Err(PunchError::RelayedClosed);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(PunchError::RelayedClosed),
            },
            _ = relayed.closed.cancelled() => return Err(PunchError::RelayedClosed),
            _ = tokio::time::sleep_until(deadline) => {
                let waited = attempt.deadline.saturating_duration_since(attempt.punch_at);
                return Err(PunchError::Attempt(match last_error {
                    Some(error) if dials.is_empty() && quic_targets.is_empty() => AttemptFailure::DialsFailed(error),
                    _ => AttemptFailure::TimedOut(waited),
                }));
            }
        }
    }
}
