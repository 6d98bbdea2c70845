//! The bookkeeping behind the manager: counters, connections, peers, tags.
//!
//! Everything here is plain data changed under the manager's lock; no method blocks
//! or does I/O.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use crate::decay::DecayFn;
use crate::{ConnectionId, Direction};

/// One established connection.
#[derive(Debug)]
pub(crate) struct ConnRecord {
    pub(crate) peer: PeerId,
    pub(crate) direction: Direction,
    pub(crate) opened_at: Instant,
    pub(crate) streams: usize,
    /// The IP this connection counts against for the per-IP limit.
    pub(crate) ip: Option<IpAddr>,
    /// The relay this (relayed, inbound) connection counts against.
    pub(crate) relay: Option<PeerId>,
    /// Chosen by a trim; the host is closing it.
    pub(crate) closing: bool,
}

/// What we know about one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerEntry {
    pub(crate) connections: usize,
    pub(crate) tags: HashMap<String, i64>,
    pub(crate) protections: HashSet<String>,
}

impl PeerEntry {
    fn is_empty(&self) -> bool {
        self.connections == 0 && self.tags.is_empty() && self.protections.is_empty()
    }

    pub(crate) fn tag_sum(&self) -> i64 {
        self.tags.values().fold(0i64, |a, v| a.saturating_add(*v))
    }
}

/// A decaying tag's value on one peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecayingValue {
    pub(crate) value: i64,
    /// The instant the value was last brought up to date, on the interval grid.
    pub(crate) since: Instant,
}

/// A registered decaying tag and its values.
#[derive(Debug)]
pub(crate) struct DecayingTagState {
    pub(crate) interval: Duration,
    pub(crate) decay: DecayFn,
    pub(crate) values: HashMap<PeerId, DecayingValue>,
}

impl DecayingTagState {
    /// `value` decayed up to `now`, or `None` when the decay removed it.
    pub(crate) fn decayed(&self, value: DecayingValue, now: Instant) -> Option<DecayingValue> {
        decay_value(self.interval, &self.decay, value, now)
    }

    /// Brings every value up to date with `now`, dropping the removed ones.
    pub(crate) fn decay_all(&mut self, now: Instant) {
        let (interval, decay) = (self.interval, &self.decay);
        self.values
            .retain(|_, v| match decay_value(interval, decay, *v, now) {
                Some(updated) => {
                    *v = updated;
                    true
                }
                None => false,
            });
    }
}

/// `value` of a tag decaying by `decay` every `interval`, brought up to `now`. The
/// result stays on the interval grid, so bumps do not shift the decay's phase.
fn decay_value(
    interval: Duration,
    decay: &DecayFn,
    value: DecayingValue,
    now: Instant,
) -> Option<DecayingValue> {
    let elapsed = now.saturating_duration_since(value.since);
    let interval = interval.as_nanos().max(1);
    let intervals = elapsed.as_nanos() / interval;
    if intervals == 0 {
        return Some(value);
    }
    let remainder = u64::try_from(elapsed.as_nanos() % interval).unwrap_or(0);
    let since = now - Duration::from_nanos(remainder);
    let decayed = decay.apply(value.value, u64::try_from(intervals).unwrap_or(u64::MAX))?;
    Some(DecayingValue {
        value: decayed,
        since,
    })
}

/// All the manager's mutable state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) pending_inbound: usize,
    pub(crate) pending_outbound: usize,
    pub(crate) established_inbound: usize,
    pub(crate) established_outbound: usize,
    /// Inbound connections (pending and established) per counted remote IP.
    pub(crate) inbound_per_ip: HashMap<IpAddr, usize>,
    /// Inbound connections still in their handshake per counted remote IP.
    pub(crate) pending_per_ip: HashMap<IpAddr, usize>,
    /// Inbound relayed connections (pending and established) per counted relay.
    pub(crate) inbound_per_relay: HashMap<PeerId, usize>,
    pub(crate) connections: HashMap<ConnectionId, ConnRecord>,
    /// How many of `connections` are marked closing.
    pub(crate) closing: usize,
    pub(crate) peers: HashMap<PeerId, PeerEntry>,
    pub(crate) decaying: HashMap<String, DecayingTagState>,
}

impl State {
    /// Established connections not already chosen for closing.
    pub(crate) fn live(&self) -> usize {
        self.connections.len().saturating_sub(self.closing)
    }

    pub(crate) fn established_total(&self) -> usize {
        self.established_inbound + self.established_outbound
    }

    pub(crate) fn connections_to(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.connections)
    }

    pub(crate) fn ip_count(&self, ip: &IpAddr) -> usize {
        self.inbound_per_ip.get(ip).copied().unwrap_or(0)
    }

    pub(crate) fn pending_ip_count(&self, ip: &IpAddr) -> usize {
        self.pending_per_ip.get(ip).copied().unwrap_or(0)
    }

    pub(crate) fn add_pending_ip(&mut self, ip: IpAddr) {
        *self.pending_per_ip.entry(ip).or_insert(0) += 1;
    }

    pub(crate) fn remove_pending_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.pending_per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_per_ip.remove(&ip);
            }
        }
    }

    pub(crate) fn relay_count(&self, relay: &PeerId) -> usize {
        self.inbound_per_relay.get(relay).copied().unwrap_or(0)
    }

    pub(crate) fn add_relay(&mut self, relay: PeerId) {
        *self.inbound_per_relay.entry(relay).or_insert(0) += 1;
    }

    pub(crate) fn remove_relay(&mut self, relay: PeerId) {
        if let Some(n) = self.inbound_per_relay.get_mut(&relay) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.inbound_per_relay.remove(&relay);
            }
        }
    }

    pub(crate) fn add_ip(&mut self, ip: IpAddr) {
        *self.inbound_per_ip.entry(ip).or_insert(0) += 1;
    }

    pub(crate) fn remove_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.inbound_per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.inbound_per_ip.remove(&ip);
            }
        }
    }

    /// Records an established connection (limits already checked).
    pub(crate) fn insert_connection(&mut self, conn: ConnectionId, record: ConnRecord) {
        match record.direction {
            Direction::Inbound => self.established_inbound += 1,
            Direction::Outbound => self.established_outbound += 1,
        }
        if let Some(ip) = record.ip {
            self.add_ip(ip);
        }
        if let Some(relay) = record.relay {
            self.add_relay(relay);
        }
        self.peers.entry(record.peer).or_default().connections += 1;
        if let Some(old) = self.connections.insert(conn, record) {
            // The caller removes duplicates first; keep the counters right regardless.
            self.forget(&old);
        }
    }

    /// Forgets a closed connection; returns it if it was known.
    pub(crate) fn remove_connection(&mut self, conn: ConnectionId) -> Option<ConnRecord> {
        let record = self.connections.remove(&conn)?;
        self.forget(&record);
        Some(record)
    }

    /// Undoes the counters of a record that left `connections`.
    fn forget(&mut self, record: &ConnRecord) {
        match record.direction {
            Direction::Inbound => {
                self.established_inbound = self.established_inbound.saturating_sub(1)
            }
            Direction::Outbound => {
                self.established_outbound = self.established_outbound.saturating_sub(1)
            }
        }
        if record.closing {
            self.closing = self.closing.saturating_sub(1);
        }
        if let Some(ip) = record.ip {
            self.remove_ip(ip);
        }
        if let Some(relay) = record.relay {
            self.remove_relay(relay);
        }
        let mut last_gone = false;
        if let Some(entry) = self.peers.get_mut(&record.peer) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                // Tags live as long as the peer is connected; protections stay.
                entry.tags.clear();
                last_gone = true;
            }
        }
        if last_gone {
            for tag in self.decaying.values_mut() {
                tag.values.remove(&record.peer);
            }
            self.drop_peer_if_empty(&record.peer);
        }
    }

    pub(crate) fn drop_peer_if_empty(&mut self, peer: &PeerId) {
        if self.peers.get(peer).is_some_and(PeerEntry::is_empty) {
            self.peers.remove(peer);
        }
    }

    /// The summed value of all tags on `peer` at `now`, decaying tags included.
    pub(crate) fn peer_value(&self, peer: &PeerId, now: Instant) -> i64 {
        let plain = self.peers.get(peer).map_or(0, PeerEntry::tag_sum);
        self.decaying.values().fold(plain, |sum, tag| {
            let v = tag
                .values
                .get(peer)
                .and_then(|v| tag.decayed(*v, now))
                .map_or(0, |v| v.value);
            sum.saturating_add(v)
        })
    }

    /// Brings every decaying value up to date with `now`.
    pub(crate) fn decay_all(&mut self, now: Instant) {
        for tag in self.decaying.values_mut() {
            tag.decay_all(now);
        }
    }

    pub(crate) fn is_protected(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|p| !p.protections.is_empty())
    }
}
