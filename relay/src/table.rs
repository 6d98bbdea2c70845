//! The relay's bookkeeping, apart from any I/O: who holds a reservation until when,
//! and which circuits are open, all peers together and per peer.
//!
//! Time is passed in (`now`), so tests drive it by hand. A peer holds at most one
//! reservation: a renewal replaces it (and moves its expiry), it never takes a
//! second slot.
//!
//! # Fair shares instead of lockout
//!
//! A full table does not simply refuse the newcomer: that would let whoever came
//! first with enough peer ids (or enough addresses) hold every slot for as long as
//! they like. When all reservation slots (or all circuit slots) are taken, a
//! newcomer whose IP address holds fewer than the address holding the most takes
//! that address's newest slot: the largest holder must hold at least two more than
//! the newcomer's address, so that the shares even out and then stay put (an
//! evicted attacker cannot evict back). Circuits count by the IP address of their
//! initiator. Peers without an IP address (memory transport) count as one address.

use crate::config::RelayConfig;
use crate::proto::Status;
use libp2p_identity::PeerId;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why the table refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// All reservation slots are taken, and no address holds more than its share.
    #[error("the relay holds its maximum of {0} reservations")]
    TooManyReservations(usize),
    /// The peer's IP address holds its maximum of reservations.
    #[error("the peer's IP address holds its maximum of {0} reservations")]
    TooManyReservationsPerIp(usize),
    /// The target has no (unexpired) reservation.
    #[error("the target has no reservation")]
    NoReservation,
    /// All circuit slots are taken, and no address holds more than its share.
    #[error("the relay has its maximum of {0} circuits open")]
    TooManyCircuits(usize),
    /// One of the two peers is an end of its maximum of circuits.
    #[error("{peer} is an end of its maximum of {max} circuits")]
    TooManyCircuitsPerPeer {
        /// The peer at its limit.
        peer: PeerId,
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// The status code a client is answered with.
    pub fn status(&self) -> Status {
        match self {
            Refusal::TooManyReservations(_) | Refusal::TooManyReservationsPerIp(_) => {
                Status::ReservationRefused
            }
            Refusal::NoReservation => Status::NoReservation,
            Refusal::TooManyCircuits(_) | Refusal::TooManyCircuitsPerPeer { .. } => {
                Status::ResourceLimitExceeded
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    expires: Instant,
    ip: Option<IpAddr>,
    /// When it was granted, in grant order (a renewal keeps it).
    granted: u64,
}

/// A reservation granted (or renewed) by [`ReservationTable::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// When it ends.
    pub expires: Instant,
    /// The peer whose reservation was taken to make room (see the fair shares in
    /// the module docs), if any.
    pub evicted: Option<PeerId>,
}

/// Names one open circuit in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircuitId(u64);

#[derive(Debug, Clone, Copy)]
struct OpenCircuit {
    src: PeerId,
    dst: PeerId,
    ip: Option<IpAddr>,
}

/// One circuit counted in the table; give it back with
/// [`ReservationTable::close_circuit`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a circuit slot must be given back with close_circuit"]
pub struct CircuitSlot {
    /// The initiator.
    pub src: PeerId,
    /// The target.
    pub dst: PeerId,
    /// The circuit's id.
    pub id: CircuitId,
    /// The circuit closed to make room for this one (its relaying must end: see the
    /// fair shares in the module docs), if any. The table no longer counts it.
    pub evicted: Option<CircuitId>,
}

/// Reservations and circuit counts, within a [`RelayConfig`]'s limits.
#[derive(Debug)]
pub struct ReservationTable {
    max_reservations: usize,
    max_reservations_per_ip: usize,
    max_circuits: usize,
    max_circuits_per_peer: usize,
    duration: Duration,
    reservations: HashMap<PeerId, Held>,
    circuits: HashMap<CircuitId, OpenCircuit>,
    circuits_per_peer: HashMap<PeerId, usize>,
    /// The order of grants and circuit ids.
    next: u64,
}

/// The newest member of the group (IP address) holding the most, if that group
/// holds at least two more than `newcomer`'s: the one to evict for the newcomer.
fn fair_victim<K: Copy>(
    members: impl Iterator<Item = (K, Option<IpAddr>, u64)>,
    newcomer: Option<IpAddr>,
) -> Option<K> {
    // Per group: how many, and its newest member (order, key).
    let mut groups: HashMap<Option<IpAddr>, (usize, u64, K)> = HashMap::new();
    for (key, group, order) in members {
        let entry = groups.entry(group).or_insert((0, order, key));
        entry.0 += 1;
        if order >= entry.1 {
            entry.1 = order;
            entry.2 = key;
        }
    }
    let own = groups.get(&newcomer).map_or(0, |g| g.0);
    groups
        .iter()
        .filter(|(group, _)| **group != newcomer)
        .max_by_key(|(_, (count, newest, _))| (*count, *newest))
        .filter(|(_, (count, _, _))| *count >= own + 2)
        .map(|(_, (_, _, key))| *key)
}

fn count_in<K: Eq + Hash>(map: &mut HashMap<K, usize>, key: K, up: bool) {
    if up {
        *map.entry(key).or_insert(0) += 1;
    } else if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl ReservationTable {
    /// An empty table with `config`'s limits.
    pub fn new(config: &RelayConfig) -> Self {
        ReservationTable {
            max_reservations: config.max_reservations,
            max_reservations_per_ip: config.max_reservations_per_ip,
            max_circuits: config.max_circuits,
            max_circuits_per_peer: config.max_circuits_per_peer,
            duration: config.reservation_duration,
            reservations: HashMap::new(),
            circuits: HashMap::new(),
            circuits_per_peer: HashMap::new(),
            next: 0,
        }
    }

    fn next_order(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Grants or renews `peer`'s reservation, made from `ip`.
    ///
    /// When every slot is taken, a new reservation takes the newest slot of the IP
    /// address holding the most, if that one holds at least two more than `ip`
    /// (the fair shares of the module docs); [`Granted::evicted`] names its peer.
    ///
    /// # Errors
    ///
    /// [`Refusal::TooManyReservationsPerIp`] for a new reservation (or a renewal
    /// from another IP) from an address at its limit, [`Refusal::TooManyReservations`]
    /// when all slots are taken by addresses holding no more than their share.
    pub fn reserve(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<Granted, Refusal> {
        self.expire(now);
        let renewal = self.reservations.get(&peer).copied();
        let moves_ip = renewal.is_none_or(|held| held.ip != ip);
        if let Some(ip) = ip.filter(|_| moves_ip) {
            let from_ip = self
                .reservations
                .values()
                .filter(|h| h.ip == Some(ip))
                .count();
            if from_ip >= self.max_reservations_per_ip {
                return Err(Refusal::TooManyReservationsPerIp(
                    self.max_reservations_per_ip,
                ));
            }
        }
        let mut evicted = None;
        if renewal.is_none() && self.reservations.len() >= self.max_reservations {
            let members = self.reservations.iter().map(|(p, h)| (*p, h.ip, h.granted));
            let victim = fair_victim(members, ip)
                .ok_or(Refusal::TooManyReservations(self.max_reservations))?;
            self.reservations.remove(&victim);
            evicted = Some(victim);
        }
        let granted = match renewal {
            Some(held) => held.granted,
            None => self.next_order(),
        };
        let expires = now + self.duration;
        self.reservations.insert(
            peer,
            Held {
                expires,
                ip,
                granted,
            },
        );
        Ok(Granted { expires, evicted })
    }

    /// Drops `peer`'s reservation (it disconnected); true if it had one.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        self.reservations.remove(peer).is_some()
    }

    /// Whether `peer` holds an unexpired reservation at `now`.
    pub fn has_reservation(&self, peer: &PeerId, now: Instant) -> bool {
        self.reservations.get(peer).is_some_and(|h| h.expires > now)
    }

    /// Reservations held (expired ones count until the next call that expires them).
    pub fn reservations(&self) -> usize {
        self.reservations.len()
    }

    /// Reservations held by peers of `ip`.
    pub fn reservations_from(&self, ip: Option<IpAddr>) -> usize {
        self.reservations.values().filter(|h| h.ip == ip).count()
    }

    /// Circuits open.
    pub fn circuits(&self) -> usize {
        self.circuits.len()
    }

    /// Circuits `peer` is an end of.
    pub fn circuits_of(&self, peer: &PeerId) -> usize {
        self.circuits_per_peer.get(peer).copied().unwrap_or(0)
    }

    /// Forgets the reservations that ended by `now`.
    pub fn expire(&mut self, now: Instant) {
        self.reservations.retain(|_, h| h.expires > now);
    }

    /// Counts a circuit from `src` to `dst` (the circuit's IP address unknown), if
    /// `dst` has a reservation and the circuit limits allow: see
    /// [`open_circuit_from`](Self::open_circuit_from).
    ///
    /// # Errors
    ///
    /// As [`open_circuit_from`](Self::open_circuit_from).
    pub fn open_circuit(
        &mut self,
        src: PeerId,
        dst: PeerId,
        now: Instant,
    ) -> Result<CircuitSlot, Refusal> {
        self.open_circuit_from(src, None, dst, now)
    }

    /// Counts a circuit from `src`, connected from `ip`, to `dst`, if `dst` has a
    /// reservation and the circuit limits allow.
    ///
    /// When every circuit slot is taken, the circuit takes the newest slot of the
    /// initiators' IP address holding the most circuits, if that one holds at least
    /// two more than `ip`; [`CircuitSlot::evicted`] names the circuit to end.
    ///
    /// # Errors
    ///
    /// [`Refusal::NoReservation`], [`Refusal::TooManyCircuitsPerPeer`], or
    /// [`Refusal::TooManyCircuits`] when all slots are taken by addresses holding no
    /// more than their share.
    pub fn open_circuit_from(
        &mut self,
        src: PeerId,
        ip: Option<IpAddr>,
        dst: PeerId,
        now: Instant,
    ) -> Result<CircuitSlot, Refusal> {
        if !self.has_reservation(&dst, now) {
            return Err(Refusal::NoReservation);
        }
        for peer in [src, dst] {
            if self.circuits_of(&peer) >= self.max_circuits_per_peer {
                return Err(Refusal::TooManyCircuitsPerPeer {
                    peer,
                    max: self.max_circuits_per_peer,
                });
            }
        }
        let mut evicted = None;
        if self.circuits.len() >= self.max_circuits {
            let members = self.circuits.iter().map(|(id, c)| (*id, c.ip, id.0));
            let victim =
                fair_victim(members, ip).ok_or(Refusal::TooManyCircuits(self.max_circuits))?;
            self.forget_circuit(victim);
            evicted = Some(victim);
        }
        let id = CircuitId(self.next_order());
        self.circuits.insert(id, OpenCircuit { src, dst, ip });
        for peer in [src, dst] {
            count_in(&mut self.circuits_per_peer, peer, true);
        }
        Ok(CircuitSlot {
            src,
            dst,
            id,
            evicted,
        })
    }

    fn forget_circuit(&mut self, id: CircuitId) {
        if let Some(circuit) = self.circuits.remove(&id) {
            for peer in [circuit.src, circuit.dst] {
                count_in(&mut self.circuits_per_peer, peer, false);
            }
        }
    }

    /// Gives a circuit's slot back (nothing if it was evicted already).
    pub fn close_circuit(&mut self, slot: CircuitSlot) {
        self.forget_circuit(slot.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(config: RelayConfig) -> ReservationTable {
        ReservationTable::new(&config)
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_reservation_lasts_its_duration_and_a_renewal_moves_it() {
        let mut t =
            table(RelayConfig::default().with_reservation_duration(Duration::from_secs(60)));
        let start = Instant::now();
        let a = PeerId::random();
        let granted = t.reserve(a, ip(1), start).unwrap();
        assert_eq!(granted.expires, start + Duration::from_secs(60));
        assert_eq!(granted.evicted, None);
        assert!(t.has_reservation(&a, start + Duration::from_secs(59)));
        assert!(!t.has_reservation(&a, start + Duration::from_secs(60)));
        let later = start + Duration::from_secs(50);
        assert_eq!(
            t.reserve(a, ip(1), later).unwrap().expires,
            later + Duration::from_secs(60)
        );
        assert_eq!(t.reservations(), 1, "a renewal takes no second slot");
        assert!(t.has_reservation(&a, start + Duration::from_secs(100)));
        t.expire(start + Duration::from_secs(111));
        assert_eq!(t.reservations(), 0);
    }

    #[test]
    fn reservations_are_bounded_in_total_and_per_ip() {
        let mut t = table(
            RelayConfig::default()
                .with_max_reservations(3)
                .with_max_reservations_per_ip(2),
        );
        let now = Instant::now();
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        t.reserve(peers[0], ip(1), now).unwrap();
        t.reserve(peers[1], ip(2), now).unwrap();
        t.reserve(peers[2], ip(2), now).unwrap();
        assert_eq!(
            t.reserve(peers[3], ip(2), now),
            Err(Refusal::TooManyReservationsPerIp(2))
        );
        // Renewing from the same IP is not a new one, even with every slot taken.
        t.reserve(peers[1], ip(2), now).unwrap();
        assert_eq!(t.reservations(), 3);
        // Full, and the newcomer's address holds one, as much as 10.0.0.2 minus one:
        // no share to take.
        assert_eq!(
            t.reserve(peers[3], ip(1), now),
            Err(Refusal::TooManyReservations(3))
        );
        assert_eq!(
            Refusal::TooManyReservations(3).status(),
            Status::ReservationRefused
        );
        // A disconnect frees a slot.
        assert!(t.remove(&peers[0]));
        assert!(!t.remove(&peers[0]));
        t.reserve(peers[3], ip(3), now).unwrap();
        // Expired reservations free their slots.
        let later = now + RelayConfig::default().reservation_duration;
        t.reserve(PeerId::random(), ip(1), later).unwrap();
        assert_eq!(t.reservations(), 1);
        assert_eq!(t.reservations_from(ip(1)), 1);
    }

    #[test]
    fn a_full_table_gives_a_newcomer_the_newest_slot_of_the_largest_address() {
        let mut t = table(
            RelayConfig::default()
                .with_max_reservations(8)
                .with_max_reservations_per_ip(8),
        );
        let now = Instant::now();
        // One address takes every slot.
        let flood: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
        for p in &flood {
            assert_eq!(t.reserve(*p, ip(9), now).unwrap().evicted, None);
        }
        // An honest peer from elsewhere still gets one: the newest flooder's.
        let honest = PeerId::random();
        let granted = t.reserve(honest, ip(1), now).unwrap();
        assert_eq!(granted.evicted, Some(flood[7]));
        assert!(t.has_reservation(&honest, now));
        assert!(!t.has_reservation(&flood[7], now));
        assert_eq!(t.reservations(), 8);
        // The evicted flooder cannot take it back (its address holds 7, ours 1),
        // nor a flooder of a new address evict the honest one.
        assert_eq!(
            t.reserve(flood[7], ip(9), now),
            Err(Refusal::TooManyReservations(8))
        );
        for other in 2..=4u8 {
            let granted = t.reserve(PeerId::random(), ip(other), now).unwrap();
            assert!(flood.contains(&granted.evicted.unwrap()));
        }
        assert!(t.has_reservation(&honest, now));
        assert_eq!(t.reservations_from(ip(9)), 4);
        // Shares of 4, 1, 1, 1, 1: a fifth address still gets in; after it, the
        // largest holds 3 and a sixth address with 0 takes another.
        t.reserve(PeerId::random(), ip(5), now).unwrap();
        t.reserve(PeerId::random(), ip(6), now).unwrap();
        assert_eq!(t.reservations_from(ip(9)), 2);
        // 2 against a newcomer's 0 is still two more; then every address holds one
        // and nobody holds two more than a newcomer.
        t.reserve(PeerId::random(), ip(7), now).unwrap();
        assert_eq!(t.reservations_from(ip(9)), 1);
        assert_eq!(
            t.reserve(PeerId::random(), ip(8), now),
            Err(Refusal::TooManyReservations(8))
        );
        assert_eq!(t.reservations(), 8);
        assert!(t.has_reservation(&honest, now));
    }

    #[test]
    fn a_circuit_needs_the_targets_reservation_and_free_slots() {
        let mut t = table(
            RelayConfig::default()
                .with_max_circuits(3)
                .with_max_circuits_per_peer(2),
        );
        let now = Instant::now();
        let (a, b, c, d) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        assert_eq!(t.open_circuit(b, a, now), Err(Refusal::NoReservation));
        assert_eq!(Refusal::NoReservation.status(), Status::NoReservation);
        t.reserve(a, ip(1), now).unwrap();
        t.reserve(d, ip(2), now).unwrap();
        let one = t.open_circuit(b, a, now).unwrap();
        let two = t.open_circuit(c, a, now).unwrap();
        assert_eq!(t.circuits_of(&a), 2);
        let refused = t.open_circuit(b, a, now).unwrap_err();
        assert_eq!(refused, Refusal::TooManyCircuitsPerPeer { peer: a, max: 2 });
        assert_eq!(refused.status(), Status::ResourceLimitExceeded);
        let three = t.open_circuit(b, d, now).unwrap();
        assert_eq!(t.open_circuit(c, d, now), Err(Refusal::TooManyCircuits(3)));
        t.close_circuit(one);
        assert_eq!(t.circuits(), 2);
        assert_eq!(t.circuits_of(&a), 1);
        let four = t.open_circuit(c, d, now).unwrap();
        for slot in [two, three, four] {
            assert_eq!(slot.evicted, None);
            t.close_circuit(slot);
        }
        assert_eq!(t.circuits(), 0);
        assert_eq!(t.circuits_of(&b), 0);
        // An expired reservation admits no circuit.
        let later = now + RelayConfig::default().reservation_duration;
        assert_eq!(t.open_circuit(b, a, later), Err(Refusal::NoReservation));
    }

    #[test]
    fn a_full_circuit_table_gives_a_newcomer_the_newest_circuit_of_the_largest_address() {
        let mut t = table(
            RelayConfig::default()
                .with_max_circuits(4)
                .with_max_circuits_per_peer(4),
        );
        let now = Instant::now();
        let targets: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for target in &targets {
            t.reserve(*target, ip(1), now).unwrap();
        }
        let flooder = PeerId::random();
        let slots: Vec<CircuitSlot> = targets
            .iter()
            .map(|d| t.open_circuit_from(flooder, ip(9), *d, now).unwrap())
            .collect();
        assert_eq!(t.circuits(), 4);
        assert_eq!(
            t.open_circuit_from(PeerId::random(), ip(9), targets[0], now),
            Err(Refusal::TooManyCircuits(4))
        );
        let honest = t
            .open_circuit_from(PeerId::random(), ip(2), targets[0], now)
            .unwrap();
        assert_eq!(honest.evicted, Some(slots[3].id));
        assert_eq!(t.circuits(), 4);
        assert_eq!(t.circuits_of(&flooder), 3);
        assert_eq!(t.circuits_of(&targets[3]), 0);
        // Giving back an evicted slot changes nothing; the others free theirs.
        for slot in slots {
            t.close_circuit(slot);
        }
        assert_eq!(t.circuits(), 1);
        assert_eq!(t.circuits_of(&flooder), 0);
        t.close_circuit(honest);
        assert_eq!(t.circuits(), 0);
    }
}
