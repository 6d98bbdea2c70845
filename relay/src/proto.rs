//! The protobuf messages of circuit relay v2, field numbers as the spec has them.
//!
//! Every field is `optional` (proto2 compatibility, as the spec marks them): a
//! message missing a field it needs is rejected by the code that reads it, not by
//! the decoder.

/// A message of the hop protocol (client <-> relay).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HopMessage {
    /// The message type ([`HopType`]).
    #[prost(enumeration = "HopType", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// CONNECT: the target peer.
    #[prost(message, optional, tag = "2")]
    pub peer: Option<Peer>,
    /// STATUS of a RESERVE: the reservation granted.
    #[prost(message, optional, tag = "3")]
    pub reservation: Option<Reservation>,
    /// STATUS: the limits of relayed connections (absent: none).
    #[prost(message, optional, tag = "4")]
    pub limit: Option<Limit>,
    /// STATUS: the outcome.
    #[prost(enumeration = "Status", optional, tag = "5")]
    pub status: Option<i32>,
}

/// The hop message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HopType {
    /// Reserve a slot in the relay.
    Reserve = 0,
    /// Connect to a peer through the relay.
    Connect = 1,
    /// The relay's answer.
    Status = 2,
}

/// A message of the stop protocol (relay -> target).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StopMessage {
    /// The message type ([`StopType`]).
    #[prost(enumeration = "StopType", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// CONNECT: the peer that initiated the circuit.
    #[prost(message, optional, tag = "2")]
    pub peer: Option<Peer>,
    /// CONNECT: the limits of the circuit (absent: none).
    #[prost(message, optional, tag = "3")]
    pub limit: Option<Limit>,
    /// STATUS: the outcome.
    #[prost(enumeration = "Status", optional, tag = "4")]
    pub status: Option<i32>,
}

/// The stop message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StopType {
    /// The relay connects an initiator to us.
    Connect = 0,
    /// Our answer.
    Status = 1,
}

/// A peer: its id and (for active relaying, deprecated) addresses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    /// The peer id, in its binary form.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub id: Option<Vec<u8>>,
    /// Binary multiaddrs.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
}

/// A reservation granted by a relay.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reservation {
    /// When it ends: UNIX time in seconds, UTC.
    #[prost(uint64, optional, tag = "1")]
    pub expire: Option<u64>,
    /// The relay's public addresses (binary multiaddrs, ending in `/p2p/<relay>`).
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
    /// The reservation voucher: a signed envelope (see [`crate::voucher`]).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub voucher: Option<Vec<u8>>,
}

/// The limits a relay applies to one relayed connection.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Limit {
    /// Longest duration in seconds (0 or absent: none).
    #[prost(uint32, optional, tag = "1")]
    pub duration: Option<u32>,
    /// Most bytes in each direction (0 or absent: none).
    #[prost(uint64, optional, tag = "2")]
    pub data: Option<u64>,
}

/// Status codes of hop and stop answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Status {
    /// The proto3 zero value; never sent.
    Unused = 0,
    /// Success.
    Ok = 100,
    /// The reservation was refused (too many, for example).
    ReservationRefused = 200,
    /// Too many relayed connections from the initiator or to the target.
    ResourceLimitExceeded = 201,
    /// Refused by an access-control list (or over a relayed connection).
    PermissionDenied = 202,
    /// The relay could not reach the target, or the target refused.
    ConnectionFailed = 203,
    /// The target has no reservation.
    NoReservation = 204,
    /// The message did not decode or lacked a field.
    MalformedMessage = 400,
    /// A message of the wrong type.
    UnexpectedMessage = 401,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Unused => "UNUSED",
            Status::Ok => "OK",
            Status::ReservationRefused => "RESERVATION_REFUSED",
            Status::ResourceLimitExceeded => "RESOURCE_LIMIT_EXCEEDED",
            Status::PermissionDenied => "PERMISSION_DENIED",
            Status::ConnectionFailed => "CONNECTION_FAILED",
            Status::NoReservation => "NO_RESERVATION",
            Status::MalformedMessage => "MALFORMED_MESSAGE",
            Status::UnexpectedMessage => "UNEXPECTED_MESSAGE",
        })
    }
}

/// The voucher payload, signed by the relay inside an envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Voucher {
    /// The relay's peer id (binary).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub relay: Option<Vec<u8>>,
    /// The reserving peer's id (binary).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub peer: Option<Vec<u8>>,
    /// When the reservation ends: UNIX time in seconds, UTC.
    #[prost(uint64, optional, tag = "3")]
    pub expiration: Option<u64>,
}

/// A signed envelope (RFC 0002).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// The signer's public key, as the protobuf `PublicKey` message.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key: Option<Vec<u8>>,
    /// The multicodec of the payload.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub payload_type: Option<Vec<u8>>,
    /// The payload.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub payload: Option<Vec<u8>>,
    /// The signature over domain, payload type and payload.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub signature: Option<Vec<u8>>,
}

impl Limit {
    /// The longest duration, `None` when unlimited.
    pub fn duration_limit(&self) -> Option<std::time::Duration> {
        self.duration
            .filter(|d| *d > 0)
            .map(|d| std::time::Duration::from_secs(u64::from(d)))
    }

    /// The byte cap per direction, `None` when unlimited.
    pub fn data_limit(&self) -> Option<u64> {
        self.data.filter(|d| *d > 0)
    }
}
