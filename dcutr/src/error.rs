//! Why an exchange or a whole hole punch failed.
//!
//! Both are `Clone + Eq` so they can travel in events (a host's lifecycle events are
//! compared in tests); an I/O error is kept as its kind and message.

use crate::proto::Type;
use std::time::Duration;

/// Why one `/libp2p/dcutr` exchange (CONNECT, CONNECT, SYNC) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The stream ended before a message was complete.
    #[error("the stream closed")]
    Closed,
    /// The stream failed.
    #[error("i/o error ({kind:?}): {message}")]
    Io {
        /// The kind of error.
        kind: std::io::ErrorKind,
        /// The error's message.
        message: String,
    },
    /// A message above the 4 KiB limit (`u64::MAX`: a prefix longer than allowed).
    #[error("a message of {0} bytes exceeds the limit of {max}", max = crate::MAX_MESSAGE_LEN)]
    TooLarge(u64),
    /// The length prefix is not a minimal unsigned varint.
    #[error("malformed length prefix")]
    MalformedPrefix,
    /// The message did not decode.
    #[error("malformed message: {0}")]
    Decode(String),
    /// The message has no type.
    #[error("a message without a type")]
    MissingType,
    /// The message has a type the protocol does not know.
    #[error("unknown message type {0}")]
    UnknownType(i32),
    /// A message of the wrong type for this step.
    #[error("expected {expected}, received {received}")]
    Unexpected {
        /// What the step waits for.
        expected: Type,
        /// What arrived.
        received: Type,
    },
    /// The peer took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// No `/libp2p/dcutr` stream could be opened (the peer does not speak it, or the
    /// relayed connection refused another stream).
    #[error("no hole punching stream: {0}")]
    OpenStream(String),
}

impl ExchangeError {
    /// The error of a failed read or write: [`ExchangeError::Closed`] for an early
    /// end of the stream, [`ExchangeError::Io`] otherwise.
    pub fn from_io(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ExchangeError::Closed,
            kind => ExchangeError::Io {
                kind,
                message: e.to_string(),
            },
        }
    }
}

/// Why one attempt's simultaneous connect did not produce a direct connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// No direct connection appeared within the punch timeout.
    #[error("no direct connection within {0:?}")]
    TimedOut(Duration),
    /// Every dial failed (the last error is kept).
    #[error("every dial failed, the last with: {0}")]
    DialsFailed(String),
}

/// Why hole punching gave up; the relayed connection stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// We know no address of ours to send: nothing to punch towards.
    #[error("no address of ours to send (no public listen address, no observed address)")]
    NoLocalAddresses,
    /// The peer sent no address we can punch to (none, only relayed ones, or only
    /// transports other than TCP and QUIC).
    #[error("the peer sent no usable address ({received} received)")]
    NoRemoteAddresses {
        /// How many addresses it sent.
        received: usize,
    },
    /// Both sides' addresses show an endpoint-dependent mapping (one IP seen at
    /// several ports by different observers): two symmetric NATs, which hole
    /// punching without port prediction cannot cross. Given up without trying.
    #[error("both sides look like they are behind symmetric NATs")]
    BothSymmetric,
    /// The exchange of attempt `attempt` failed.
    #[error("attempt {attempt}: the exchange failed: {error}")]
    Exchange {
        /// The attempt (from 1).
        attempt: u8,
        /// What went wrong.
        error: ExchangeError,
    },
    /// Every attempt ran out of time: no direct connection after the last one. The
    /// message says which side's addresses looked like a symmetric NAT's (likely the
    /// cause, when the other side's filtering is port-dependent).
    #[error(
        "timed out at attempt {attempts}: no direct connection{}",
        symmetric_hint(*local_symmetric, *remote_symmetric)
    )]
    TimedOut {
        /// Attempts made.
        attempts: u8,
        /// Whether our own addresses look like a symmetric NAT's.
        local_symmetric: bool,
        /// Whether the peer's addresses look like a symmetric NAT's.
        remote_symmetric: bool,
    },
    /// Attempt `attempts` produced no direct connection while one side's addresses
    /// look like a symmetric NAT's, and no retry follows
    /// ([`Config::one_attempt_when_symmetric`](crate::Config::one_attempt_when_symmetric)):
    /// a symmetric NAT punches through a full-cone or address-restricted one at the
    /// first attempt, so the other side's NAT filters by port, which hole punching
    /// without port prediction cannot cross.
    #[error(
        "no direct connection at attempt {attempts}, and {}: the other side's NAT filters by port (port-restricted cone or symmetric), which hole punching without port prediction cannot cross; given up",
        symmetric_side(*local_symmetric, *remote_symmetric)
    )]
    SymmetricUnpunchable {
        /// Attempts made.
        attempts: u8,
        /// Whether our own addresses look like a symmetric NAT's.
        local_symmetric: bool,
        /// Whether the peer's addresses look like a symmetric NAT's.
        remote_symmetric: bool,
    },
    /// The last attempt's dials all failed.
    #[error("attempt {attempts}: {error}")]
    DialsFailed {
        /// Attempts made.
        attempts: u8,
        /// Why the last one failed.
        error: String,
    },
    /// The relayed connection closed before the punch was done.
    #[error("the relayed connection closed during attempt {attempt}")]
    RelayedConnectionClosed {
        /// The attempt it closed in.
        attempt: u8,
    },
}

/// Which side [`Failure::SymmetricUnpunchable`] names.
fn symmetric_side(local: bool, remote: bool) -> &'static str {
    match (local, remote) {
        (true, false) => "our addresses look like a symmetric NAT's",
        (false, true) => "the peer's addresses look like a symmetric NAT's",
        _ => "both sides' addresses look like symmetric NATs'",
    }
}

/// What [`Failure::TimedOut`]'s message adds about symmetric-looking addresses.
fn symmetric_hint(local: bool, remote: bool) -> &'static str {
    match (local, remote) {
        (false, false) => "",
        (true, false) => " (our addresses look like a symmetric NAT's)",
        (false, true) => " (the peer's addresses look like a symmetric NAT's)",
        (true, true) => " (both sides' addresses look like symmetric NATs')",
    }
}
