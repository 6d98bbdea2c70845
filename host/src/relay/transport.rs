//! The relay client: a transport for `/p2p-circuit` addresses, its listeners (a
//! reservation kept renewed, inbound circuits), and the stop handler feeding them.
//!
//! The transport is made before the host; the host hands it a weak handle of
//! itself once built ([`install`]), through which it dials relays and opens hop
//! streams.

use super::{is_relayed, RESERVATION_TAG};
use crate::conn::ConnState;
use crate::dial::DialOpts;
use crate::events::Event;
use crate::handlers::{Handler, HandlerOptions};
use crate::host::Inner;
use crate::stream::Stream;
use crate::transport::{
    Listener, Transport, TransportDialOpts, TransportError, TransportOutput, Transported,
};
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};
use weft_relay::{Circuit, ReservationInfo, Status, HOP_PROTOCOL, STOP_PROTOCOL};

/// How long one exchange with a relay may take (reserve, connect, stop).
const RELAY_TIMEOUT: Duration = Duration::from_secs(15);
/// Inbound circuits accepted and not yet taken by the host's accept loop, per
/// listener; more are refused.
const PENDING_CIRCUITS: usize = 16;
/// How long to wait after a failed renewal before the next attempt.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// What the transport, its listeners and the stop handler share.
#[derive(Default)]
pub(crate) struct ClientShared {
    host: OnceLock<Weak<Inner>>,
    /// Per relay, where its circuits go (one listener per relay).
    listeners: Mutex<HashMap<PeerId, mpsc::Sender<Circuit>>>,
}

impl ClientShared {
    fn host(&self) -> Result<Arc<Inner>, TransportError> {
        self.host.get().and_then(Weak::upgrade).ok_or_else(|| {
            TransportError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the host is gone (or not built yet)",
            ))
        })
    }

    fn listeners(&self) -> MutexGuard<'_, HashMap<PeerId, mpsc::Sender<Circuit>>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one inbound stop stream: hands the circuit to the listener of the
    /// relay it came from, or refuses it.
    async fn handle_stop(&self, stream: Stream) {
        let relay = stream.peer();
        let request = match weft_relay::read_stop(Box::new(stream), relay, RELAY_TIMEOUT).await {
            Ok(r) => r,
            Err(e) => return debug!(%relay, error = %e, "bad stop request"),
        };
        let sender = self.listeners().get(&relay).cloned();
        let permit = match sender.as_ref().map(|s| s.try_reserve()) {
            Some(Ok(permit)) => permit,
            Some(Err(_)) | None => {
                debug!(%relay, source = %request.source(), "circuit refused: no listener on this relay, or too many pending");
                let _ = request.deny(Status::ConnectionFailed).await;
                return;
            }
        };
        match request.accept().await {
            Ok(circuit) => permit.send(circuit),
            Err(e) => debug!(%relay, error = %e, "answering the stop request failed"),
        }
    }
}

/// Registers the stop handler and gives the transport its host.
pub(crate) fn install(inner: &Arc<Inner>, shared: Arc<ClientShared>) {
    let _ = shared.host.set(Arc::downgrade(inner));
    let handler: Handler = Arc::new(move |stream: Stream| {
        let shared = shared.clone();
        Box::pin(async move { shared.handle_stop(stream).await })
    });
    inner.add_exact_handler(
        STOP_PROTOCOL.to_string(),
        handler,
        HandlerOptions::default(),
    );
}

/// `/<relay addr>/p2p/<relay>/p2p-circuit` split into the relay's address (ending
/// in `/p2p/<relay>`) and its id; `None` for any other address.
fn parse_circuit(addr: &Multiaddr) -> Option<(Multiaddr, PeerId)> {
    let mut parts: Vec<Protocol<'_>> = addr.iter().collect();
    if !matches!(parts.pop(), Some(Protocol::P2pCircuit)) {
        return None;
    }
    let Some(Protocol::P2p(relay)) = parts.last() else {
        return None;
    };
    let relay = *relay;
    let relay_addr: Multiaddr = parts.into_iter().collect();
    // The relay must be reachable directly: no circuit inside a circuit.
    if is_relayed(&relay_addr) || relay_addr.iter().count() < 2 {
        return None;
    }
    Some((relay_addr, relay))
}

fn io_error(e: impl std::fmt::Display) -> TransportError {
    TransportError::Io(io::Error::other(e.to_string()))
}

/// A connection to the relay (dialed, or one already open) that is not itself
/// relayed.
async fn relay_connection(
    inner: &Arc<Inner>,
    relay_addr: &Multiaddr,
) -> Result<Arc<ConnState>, TransportError> {
    let conn = inner
        .dial_addr(relay_addr, DialOpts::default())
        .await
        .map_err(io_error)?;
    if is_relayed(&conn.remote_addr) {
        return Err(io_error("the only connection to the relay is relayed"));
    }
    Ok(conn)
}

/// Reserves a slot at the relay once.
async fn reserve_once(
    inner: &Arc<Inner>,
    relay_addr: &Multiaddr,
    relay: PeerId,
) -> Result<ReservationInfo, TransportError> {
    let conn = relay_connection(inner, relay_addr).await?;
    let mut stream = inner
        .open_stream_on(&conn, &[HOP_PROTOCOL])
        .await
        .map_err(io_error)?;
    weft_relay::reserve(&mut stream, relay, inner.peer_id, RELAY_TIMEOUT)
        .await
        .map_err(io_error)
}

/// Dials and listens on `/p2p-circuit` addresses through the host.
pub(crate) struct RelayTransport {
    shared: Arc<ClientShared>,
}

impl RelayTransport {
    pub(crate) fn new(shared: Arc<ClientShared>) -> Self {
        RelayTransport { shared }
    }
}

#[async_trait::async_trait]
impl Transport for RelayTransport {
    fn name(&self) -> &str {
        "p2p-circuit"
    }

    fn can_dial(&self, addr: &Multiaddr) -> bool {
        parse_circuit(addr).is_some()
    }

    fn can_listen(&self, addr: &Multiaddr) -> bool {
        parse_circuit(addr).is_some()
    }

    async fn dial(
        &self,
        addr: &Multiaddr,
        opts: &TransportDialOpts,
    ) -> Result<Transported, TransportError> {
        let (relay_addr, relay) =
            parse_circuit(addr).ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        let target = opts
            .peer
            .ok_or_else(|| io_error("a circuit dial needs the target's /p2p/ id"))?;
        let inner = self.shared.host()?;
        let conn = relay_connection(&inner, &relay_addr).await?;
        let stream = inner
            .open_stream_on(&conn, &[HOP_PROTOCOL])
            .await
            .map_err(io_error)?;
        drop(inner);
        let circuit = weft_relay::connect(Box::new(stream), relay, target, RELAY_TIMEOUT)
            .await
            .map_err(io_error)?;
        Ok(Transported {
            output: TransportOutput::Raw(circuit.into_io()),
            local_addr: addr.clone(),
            remote_addr: addr.clone(),
        })
    }

    async fn listen(&self, addr: &Multiaddr) -> Result<Box<dyn Listener>, TransportError> {
        let (relay_addr, relay) =
            parse_circuit(addr).ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        let inner = self.shared.host()?;
        let (sender, circuits) = mpsc::channel(PENDING_CIRCUITS);
        {
            let mut listeners = self.shared.listeners();
            if listeners.get(&relay).is_some_and(|s| !s.is_closed()) {
                return Err(TransportError::Io(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("already listening through {relay}"),
                )));
            }
            listeners.insert(relay, sender.clone());
        }
        let info = match reserve_once(&inner, &relay_addr, relay).await {
            Ok(info) => info,
            Err(e) => {
                remove_listener(&self.shared, relay, &sender);
                return Err(e);
            }
        };
        info!(%relay, expire = info.expire, "reserved a relay slot");
        // While the reservation lives, trimming must not close the connection it
        // needs (the relay drops a reservation with its peer's connection).
        inner.policy.protect(relay, RESERVATION_TAG);
        let mut addrs = info.circuit_addrs();
        if addrs.is_empty() {
            addrs.push(addr.clone());
        }
        let stop = CancellationToken::new();
        inner.tasks.spawn(keep_reserved(KeepReserved {
            inner: Arc::downgrade(&inner),
            shared: self.shared.clone(),
            sender,
            relay_addr,
            relay,
            expire: info.expire,
            stop: stop.clone(),
        }));
        Ok(Box::new(RelayListener {
            circuits,
            addrs,
            local_addr: addr.clone(),
            _stop: stop.drop_guard(),
        }))
    }
}

fn remove_listener(shared: &ClientShared, relay: PeerId, sender: &mpsc::Sender<Circuit>) {
    let mut listeners = shared.listeners();
    if listeners
        .get(&relay)
        .is_some_and(|s| s.same_channel(sender))
    {
        listeners.remove(&relay);
    }
}

/// The renewal task of one relay listener.
struct KeepReserved {
    inner: Weak<Inner>,
    shared: Arc<ClientShared>,
    sender: mpsc::Sender<Circuit>,
    relay_addr: Multiaddr,
    relay: PeerId,
    expire: u64,
    stop: CancellationToken,
}

/// Renews the reservation before it expires (and at least every half idle timeout,
/// so neither side closes the connection as idle), at once when the connection to
/// the relay dropped, until the listener is dropped or the host shuts down. The
/// relay stays protected from trimming while the reservation lives: from each
/// renewal to its expiry, and never after the listener ends.
async fn keep_reserved(task: KeepReserved) {
    let KeepReserved {
        inner: weak,
        shared,
        sender,
        relay_addr,
        relay,
        mut expire,
        stop,
    } = task;
    let Some(inner) = weak.upgrade() else { return };
    let mut events = inner.events.subscribe();
    let shutdown = inner.shutdown.clone();
    let idle = inner.config.idle_timeout;
    drop(inner);
    // A deadline, not a sleep: other events must not push the renewal back.
    let mut next = tokio::time::Instant::now() + renewal_delay(expire, idle);
    loop {
        let disconnected = tokio::select! {
            _ = stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next) => false,
            event = events.recv() => match event {
                Ok(Event::Disconnected { peer, .. }) => peer == relay,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        };
        let Some(inner) = weak.upgrade() else { break };
        if disconnected && inner.connection_to(&relay).is_some() {
            continue;
        }
        let delay = match reserve_once(&inner, &relay_addr, relay).await {
            Ok(info) => {
                debug!(%relay, expire = info.expire, "relay reservation renewed");
                expire = info.expire;
                inner.policy.protect(relay, RESERVATION_TAG);
                renewal_delay(expire, idle)
            }
            Err(e) => {
                warn!(%relay, error = %e, "renewing the relay reservation failed; retrying");
                if expired(expire) {
                    inner.policy.unprotect(&relay, RESERVATION_TAG);
                }
                RETRY_DELAY
            }
        };
        next = tokio::time::Instant::now() + delay;
    }
    if let Some(inner) = weak.upgrade() {
        inner.policy.unprotect(&relay, RESERVATION_TAG);
    }
    remove_listener(&shared, relay, &sender);
}

/// Whether a reservation ending at `expire` (UNIX seconds) has ended.
fn expired(expire: u64) -> bool {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() >= expire
}

/// When to renew: [`weft_relay::renewal_delay`], and at least every half idle
/// timeout.
fn renewal_delay(expire: u64, idle: Option<Duration>) -> Duration {
    let delay = weft_relay::renewal_delay(expire, SystemTime::now());
    match idle {
        Some(idle) => delay.min(idle / 2),
        None => delay,
    }
}

/// Inbound circuits through one relay.
struct RelayListener {
    circuits: mpsc::Receiver<Circuit>,
    addrs: Vec<Multiaddr>,
    local_addr: Multiaddr,
    /// Stops the renewal task when the listener goes.
    _stop: DropGuard,
}

#[async_trait::async_trait]
impl Listener for RelayListener {
    fn local_addrs(&self) -> Vec<Multiaddr> {
        self.addrs.clone()
    }

    async fn accept(&mut self) -> Result<Transported, TransportError> {
        let circuit = self.circuits.recv().await.ok_or(TransportError::Closed)?;
        debug!(relay = %circuit.relay(), source = %circuit.remote(), "inbound circuit");
        Ok(Transported {
            output: TransportOutput::Raw(circuit.into_io()),
            local_addr: self.local_addr.clone(),
            remote_addr: self.local_addr.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_addresses_name_a_directly_reachable_relay() {
        let relay = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap();
        let (relay_addr, id) = parse_circuit(&addr).unwrap();
        assert_eq!(id, relay);
        assert_eq!(
            relay_addr,
            format!("/ip4/127.0.0.1/tcp/1/p2p/{relay}").parse().unwrap()
        );
        for bad in [
            "/ip4/127.0.0.1/tcp/1".to_string(),
            "/ip4/127.0.0.1/tcp/1/p2p-circuit".to_string(),
            format!("/p2p/{relay}/p2p-circuit"),
            format!("/ip4/1.2.3.4/tcp/1/p2p/{relay}/p2p-circuit/p2p/{relay}/p2p-circuit"),
            format!("/ip4/127.0.0.1/tcp/1/p2p/{relay}"),
        ] {
            let bad: Multiaddr = bad.parse().unwrap();
            assert!(parse_circuit(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn renewals_come_within_half_the_idle_timeout() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let hour = now + 3600;
        assert!(renewal_delay(hour, None) > Duration::from_secs(2000));
        assert_eq!(
            renewal_delay(hour, Some(Duration::from_secs(120))),
            Duration::from_secs(60)
        );
    }
}
