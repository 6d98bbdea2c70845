//! The relay server's limits.

use std::time::Duration;

/// How much a relay serves: reservations, circuits, and the limits of each circuit.
///
/// The defaults follow go-libp2p's (`relayv2.DefaultResources`): reservations of
/// one hour, 128 of them, 8 per IP address; circuits of at most 2 minutes and
/// 128 KiB each way, 16 per peer. The copy buffer is 4 KiB per direction (one relay
/// message's worth; go-libp2p's is 2 KiB), and at most 1024 circuits are open in
/// total. Build it with [`Default`] and the `with_*` methods; fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// How long a reservation lasts before the client must renew it.
    pub reservation_duration: Duration,
    /// Reservations held at once, all peers together.
    pub max_reservations: usize,
    /// Reservations held at once by peers of one IP address.
    pub max_reservations_per_ip: usize,
    /// Circuits open at once, all peers together.
    pub max_circuits: usize,
    /// Circuits open at once that one peer is an end of (as initiator or target).
    pub max_circuits_per_peer: usize,
    /// The longest a circuit stays open (`None`: no limit).
    pub max_circuit_duration: Option<Duration>,
    /// The most bytes a circuit carries in each direction (`None`: no limit).
    pub max_circuit_bytes: Option<u64>,
    /// The copy buffer of each direction of a circuit, reserved from the relay's
    /// budget before the circuit opens.
    pub buffer_size: usize,
    /// The longest one exchange of relay messages may take (reading a request,
    /// the target's stop answer).
    pub handshake_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            reservation_duration: Duration::from_secs(60 * 60),
            max_reservations: 128,
            max_reservations_per_ip: 8,
            max_circuits: 1024,
            max_circuits_per_peer: 16,
            max_circuit_duration: Some(Duration::from_secs(2 * 60)),
            max_circuit_bytes: Some(1 << 17),
            buffer_size: 4096,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

impl RelayConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a reservation lasts.
    pub fn with_reservation_duration(mut self, duration: Duration) -> Self {
        self.reservation_duration = duration;
        self
    }

    /// Reservations at once, all peers together.
    pub fn with_max_reservations(mut self, max: usize) -> Self {
        self.max_reservations = max;
        self
    }

    /// Reservations at once per IP address.
    pub fn with_max_reservations_per_ip(mut self, max: usize) -> Self {
        self.max_reservations_per_ip = max;
        self
    }

    /// Circuits at once, all peers together.
    pub fn with_max_circuits(mut self, max: usize) -> Self {
        self.max_circuits = max;
        self
    }

    /// Circuits at once per peer.
    pub fn with_max_circuits_per_peer(mut self, max: usize) -> Self {
        self.max_circuits_per_peer = max;
        self
    }

    /// The longest duration of a circuit.
    pub fn with_max_circuit_duration(mut self, duration: Option<Duration>) -> Self {
        self.max_circuit_duration = duration;
        self
    }

    /// The byte cap of a circuit in each direction.
    pub fn with_max_circuit_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_circuit_bytes = bytes;
        self
    }

    /// The copy buffer of each direction (at least 1 byte).
    pub fn with_buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.max(1);
        self
    }

    /// The timeout of each message exchange.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The limit announced to both ends of a circuit.
    pub fn limit(&self) -> Option<crate::proto::Limit> {
        if self.max_circuit_duration.is_none() && self.max_circuit_bytes.is_none() {
            return None;
        }
        Some(crate::proto::Limit {
            duration: self
                .max_circuit_duration
                .map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX)),
            data: self.max_circuit_bytes,
        })
    }
}
