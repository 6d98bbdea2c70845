//! The relay's bookkeeping, apart from any I/O: who holds a reservation until when,
//! and how many circuits are open, all peers together and per peer.
//!
//! Time is passed in (`now`), so tests drive it by hand. A peer holds at most one
//! reservation: a renewal replaces it (and moves its expiry), it never takes a
//! second slot.

use crate::config::RelayConfig;
use crate::proto::Status;
use libp2p_identity::PeerId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why the table refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// All reservation slots are taken.
    #[error("the relay holds its maximum of {0} reservations")]
    TooManyReservations(usize),
    /// The peer's IP address holds its maximum of reservations.
    #[error("the peer's IP address holds its maximum of {0} reservations")]
    TooManyReservationsPerIp(usize),
    /// The target has no (unexpired) reservation.
    #[error("the target has no reservation")]
    NoReservation,
    /// All circuit slots are taken.
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
    circuits_per_peer: HashMap<PeerId, usize>,
    circuits: usize,
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
            circuits_per_peer: HashMap::new(),
            circuits: 0,
        }
    }

    /// Grants or renews `peer`'s reservation, made from `ip`; returns its expiry.
    ///
    /// # Errors
    ///
    /// [`Refusal::TooManyReservations`] or [`Refusal::TooManyReservationsPerIp`] for
    /// a new reservation (or a renewal from another IP) over a limit.
    pub fn reserve(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<Instant, Refusal> {
        self.expire(now);
        let renewal = self.reservations.get(&peer).copied();
        if renewal.is_none() && self.reservations.len() >= self.max_reservations {
            return Err(Refusal::TooManyReservations(self.max_reservations));
        }
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
        let expires = now + self.duration;
        self.reservations.insert(peer, Held { expires, ip });
        Ok(expires)
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

    /// Circuits open.
    pub fn circuits(&self) -> usize {
        self.circuits
    }

    /// Circuits `peer` is an end of.
    pub fn circuits_of(&self, peer: &PeerId) -> usize {
        self.circuits_per_peer.get(peer).copied().unwrap_or(0)
    }

    /// Forgets the reservations that ended by `now`.
    pub fn expire(&mut self, now: Instant) {
        self.reservations.retain(|_, h| h.expires > now);
    }

    /// Counts a circuit from `src` to `dst`, if `dst` has a reservation and the
    /// circuit limits allow.
    ///
    /// # Errors
    ///
    /// [`Refusal::NoReservation`], [`Refusal::TooManyCircuits`] or
    /// [`Refusal::TooManyCircuitsPerPeer`].
    pub fn open_circuit(
        &mut self,
        src: PeerId,
        dst: PeerId,
        now: Instant,
    ) -> Result<CircuitSlot, Refusal> {
        if !self.has_reservation(&dst, now) {
            return Err(Refusal::NoReservation);
        }
        if self.circuits >= self.max_circuits {
            return Err(Refusal::TooManyCircuits(self.max_circuits));
        }
        for peer in [src, dst] {
            if self.circuits_of(&peer) >= self.max_circuits_per_peer {
                return Err(Refusal::TooManyCircuitsPerPeer {
                    peer,
                    max: self.max_circuits_per_peer,
                });
            }
        }
        self.circuits += 1;
        for peer in [src, dst] {
            *self.circuits_per_peer.entry(peer).or_insert(0) += 1;
        }
        Ok(CircuitSlot { src, dst })
    }

    /// Gives a circuit's slot back.
    pub fn close_circuit(&mut self, slot: CircuitSlot) {
        self.circuits = self.circuits.saturating_sub(1);
        for peer in [slot.src, slot.dst] {
            if let Some(n) = self.circuits_per_peer.get_mut(&peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.circuits_per_peer.remove(&peer);
                }
            }
        }
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
        let expires = t.reserve(a, ip(1), start).unwrap();
        assert_eq!(expires, start + Duration::from_secs(60));
        assert!(t.has_reservation(&a, start + Duration::from_secs(59)));
        assert!(!t.has_reservation(&a, start + Duration::from_secs(60)));
        let later = start + Duration::from_secs(50);
        assert_eq!(
            t.reserve(a, ip(1), later).unwrap(),
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
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        t.reserve(peers[0], ip(1), now).unwrap();
        t.reserve(peers[1], ip(1), now).unwrap();
        assert_eq!(
            t.reserve(peers[2], ip(1), now),
            Err(Refusal::TooManyReservationsPerIp(2))
        );
        // Renewing from the same IP is not a new one.
        t.reserve(peers[1], ip(1), now).unwrap();
        t.reserve(peers[2], ip(2), now).unwrap();
        assert_eq!(
            t.reserve(peers[3], ip(3), now),
            Err(Refusal::TooManyReservations(3))
        );
        assert_eq!(
            Refusal::TooManyReservations(3).status(),
            Status::ReservationRefused
        );
        // A renewal at the limit still succeeds; a disconnect frees a slot.
        t.reserve(peers[0], ip(1), now).unwrap();
        assert!(t.remove(&peers[0]));
        assert!(!t.remove(&peers[0]));
        t.reserve(peers[3], ip(3), now).unwrap();
        // Expired reservations free their slots.
        let later = now + RelayConfig::default().reservation_duration;
        t.reserve(PeerId::random(), ip(1), later).unwrap();
        assert_eq!(t.reservations(), 1);
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
            t.close_circuit(slot);
        }
        assert_eq!(t.circuits(), 0);
        assert_eq!(t.circuits_of(&b), 0);
        // An expired reservation admits no circuit.
        let later = now + RelayConfig::default().reservation_duration;
        assert_eq!(t.open_circuit(b, a, later), Err(Refusal::NoReservation));
    }
}
