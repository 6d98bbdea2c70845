//! DCUtR hole punching in the host (feature `dcutr`), on `weft-dcutr`.
//!
//! On every inbound relayed connection (we accepted it through a relay: the spec's
//! B, [`Side::Initiator`]) the host opens a `/libp2p/dcutr` stream, exchanges
//! addresses, and punches at RTT/2: over TCP both sides dial (a simultaneous open,
//! B taking the security responder role; a SYN that reaches a listener instead is
//! upgraded in the same roles), over QUIC the other side dials while our listening
//! socket sends it random packets and dials it too. Up to three attempts. The other
//! side ([`Side::Responder`]) answers on its handler and dials when SYNC arrives.
//!
//! The addresses we send: the accepted external addresses, the observed ones
//! (confirmed or not, most observed first), predicted ones (an observed IP with the
//! ports we listen on), and our listen addresses that the classifier calls public.
//!
//! Each side reports the end with [`Event::HolePunch`]; on success the relayed
//! connection is closed after a grace period (new streams already go to the direct
//! one, the newest), on failure it stays.

mod initiator;
mod punch;
mod responder;

use crate::builder::HostBuilder;
use crate::dial::classify::AddrClass;
use crate::events::Event;
use crate::host::Inner;
use crate::transport::is_circuit;
use multiaddr::{Multiaddr, Protocol};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::info;
use weft_connmgr::ConnectionId;

pub use weft_dcutr::{
    AttemptFailure, Config as HolePunchConfig, ExchangeError, Failure, PunchTransport, Side,
    PROTOCOL,
};

/// How long the relayed connection stays after the direct one is up, by default.
pub const DEFAULT_RELAYED_GRACE: Duration = Duration::from_secs(2);

/// The direct connection a hole punch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectConnection {
    /// The connection.
    pub connection: ConnectionId,
    /// The peer's address on it.
    pub remote_addr: Multiaddr,
    /// Its transport (`None` for one neither TCP nor QUIC, such as a connection the
    /// peer made some other way meanwhile).
    pub transport: Option<PunchTransport>,
    /// The relayed connection's RTT measured in the successful attempt (initiator
    /// side only).
    pub rtt: Option<Duration>,
}

/// What the builder was asked for.
#[derive(Debug, Clone)]
pub(crate) struct DcutrSetup {
    enabled: bool,
    config: HolePunchConfig,
    relayed_grace: Duration,
}

impl Default for DcutrSetup {
    fn default() -> Self {
        DcutrSetup {
            enabled: true,
            config: HolePunchConfig::default(),
            relayed_grace: DEFAULT_RELAYED_GRACE,
        }
    }
}

impl DcutrSetup {
    /// Registers the handler and starts watching for relayed connections.
    pub(crate) fn install(self, inner: &Arc<Inner>) {
        if !self.enabled {
            return;
        }
        let shared = Arc::new(Shared {
            config: self.config,
            relayed_grace: self.relayed_grace,
            responder_attempts: Mutex::default(),
        });
        responder::install(inner, shared.clone());
        inner
            .tasks
            .spawn(initiator::watch(Arc::downgrade(inner), shared));
    }
}

impl HostBuilder {
    /// How hole punching runs (feature `dcutr`; on by default with the feature):
    /// attempts, timeouts, giving up early on two symmetric NATs.
    pub fn hole_punching(mut self, config: HolePunchConfig) -> Self {
        self.dcutr.config = config;
        self
    }

    /// Whether the host punches holes over relayed connections and answers the
    /// peers that do (feature `dcutr`; on by default with the feature).
    pub fn hole_punching_enabled(mut self, on: bool) -> Self {
        self.dcutr.enabled = on;
        self
    }

    /// How long a relayed connection stays once hole punching replaced it with a
    /// direct one (default [`DEFAULT_RELAYED_GRACE`]): streams already open on it
    /// have that long to finish.
    pub fn relayed_grace(mut self, grace: Duration) -> Self {
        self.dcutr.relayed_grace = grace;
        self
    }
}

/// What the initiator's watcher and the responder's handler share.
pub(crate) struct Shared {
    config: HolePunchConfig,
    relayed_grace: Duration,
    /// The exchanges answered per relayed connection (for the responder's attempt
    /// numbers), for open connections only.
    responder_attempts: Mutex<HashMap<ConnectionId, u8>>,
}

impl Shared {
    fn responder_attempts(&self) -> MutexGuard<'_, HashMap<ConnectionId, u8>> {
        self.responder_attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The number of the latest exchange the peer started on `relayed` (0: none).
    fn responder_attempt(&self, relayed: ConnectionId) -> u8 {
        self.responder_attempts()
            .get(&relayed)
            .copied()
            .unwrap_or(0)
    }

    /// The number of the exchange the peer starts on `relayed` now (from 1); the
    /// counts of closed connections are dropped.
    fn next_responder_attempt(&self, inner: &Inner, relayed: ConnectionId) -> u8 {
        let mut counts = self.responder_attempts();
        counts.retain(|id, _| *id == relayed || inner.connection(id).is_some());
        let n = counts.entry(relayed).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
}

/// Our addresses for a CONNECT, best first: accepted external addresses, observed
/// ones (confirmed or not, the most observed first), predicted ones (each observed
/// IP with the TCP and QUIC ports we listen on), then listen addresses the
/// classifier calls public. Relayed ones never.
pub(crate) fn our_addrs(inner: &Inner) -> Vec<Multiaddr> {
    let classifier = &inner.dialer.config.classifier;
    let (external, observed) = {
        let state = inner.lock();
        (
            state.own_addrs.external().to_vec(),
            state.own_addrs.observed(Instant::now()),
        )
    };
    let listen = inner.listen_addrs();
    let seen_ips: Vec<IpAddr> = external
        .iter()
        .chain(&observed)
        .filter_map(crate::dial::classify::leading_ip)
        .collect();
    let predicted = listen
        .iter()
        .filter(|a| PunchTransport::of(a).is_some())
        .flat_map(|a| {
            seen_ips
                .iter()
                .filter_map(move |ip| with_ip(a, *ip))
                .collect::<Vec<_>>()
        });
    let public_listen = listen
        .iter()
        .filter(|a| classifier.addr(a) == AddrClass::Public)
        .cloned();
    let mut out: Vec<Multiaddr> = Vec::new();
    for addr in external
        .iter()
        .cloned()
        .chain(observed)
        .chain(predicted.collect::<Vec<_>>())
        .chain(public_listen)
    {
        if is_circuit(&addr) || PunchTransport::of(&addr).is_none() || out.contains(&addr) {
            continue;
        }
        out.push(addr);
    }
    out
}

/// `addr` with its leading IP replaced by `ip` (of the same family).
fn with_ip(addr: &Multiaddr, ip: IpAddr) -> Option<Multiaddr> {
    let mut parts = addr.iter();
    let first = match (parts.next()?, ip) {
        (Protocol::Ip4(_), IpAddr::V4(v4)) => Protocol::Ip4(v4),
        (Protocol::Ip6(_), IpAddr::V6(v6)) => Protocol::Ip6(v6),
        _ => return None,
    };
    Some(std::iter::once(first).chain(parts).collect())
}

/// What one side reports at the end of a hole punch (or, as the responder, of an
/// attempt).
pub(crate) struct Report {
    pub(crate) peer: libp2p_identity::PeerId,
    pub(crate) relayed: ConnectionId,
    pub(crate) side: Side,
    pub(crate) outcome: Result<DirectConnection, Failure>,
    pub(crate) attempts: u8,
    pub(crate) elapsed: Duration,
}

/// Emits the event; after a success closes the relayed connection once the grace
/// period is over.
pub(crate) fn report(inner: &Arc<Inner>, shared: &Shared, r: Report) {
    match &r.outcome {
        Ok(direct) => {
            info!(peer = %r.peer, side = %r.side, attempts = r.attempts, elapsed = ?r.elapsed,
                remote = %direct.remote_addr, "hole punch succeeded: direct connection");
            let weak = Arc::downgrade(inner);
            let shutdown = inner.shutdown.clone();
            let grace = shared.relayed_grace;
            let relayed = r.relayed;
            inner.tasks.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(grace) => {
                        if let Some(inner) = weak.upgrade() {
                            inner.close(&relayed).await;
                        }
                    }
                }
            });
        }
        Err(failure) => {
            info!(peer = %r.peer, side = %r.side, attempts = r.attempts, reason = %failure,
                "hole punch failed; the connection stays relayed");
        }
    }
    inner.emit(Event::HolePunch {
        peer: r.peer,
        relayed: r.relayed,
        side: r.side,
        outcome: r.outcome,
        attempts: r.attempts,
        elapsed: r.elapsed,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicted_addresses_keep_the_port_and_take_the_observed_ip() {
        let listen: Multiaddr = "/ip4/10.0.0.2/udp/4001/quic-v1".parse().unwrap();
        assert_eq!(
            with_ip(&listen, "198.51.100.7".parse().unwrap()),
            Some("/ip4/198.51.100.7/udp/4001/quic-v1".parse().unwrap())
        );
        assert_eq!(with_ip(&listen, "2001:db8::1".parse().unwrap()), None);
    }
}
