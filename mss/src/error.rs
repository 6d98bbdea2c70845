//! The typed errors of a negotiation.

use std::io;

/// Why a multistream-select negotiation failed.
///
/// Converting into [`std::io::Error`] (see the `From` impl) keeps this value as the
/// inner error, so it can be recovered with [`io::Error::get_ref`] and
/// `downcast_ref::<NegotiationError>()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The underlying I/O failed.
    #[error("I/O error during multistream-select negotiation: {0}")]
    Io(#[from] io::Error),
    /// The remote closed the stream before the negotiation finished.
    #[error("the remote closed the stream during multistream-select negotiation")]
    ConnectionClosed,
    /// The remote rejected (`na`) every protocol we proposed.
    #[error("the remote accepted none of the proposed protocols {tried:?}")]
    NoProtocolAccepted {
        /// The protocol ids we proposed, in order.
        tried: Vec<String>,
    },
    /// The first message from the remote was not `/multistream/1.0.0`.
    #[error("expected the multistream-select header, received {received:?}")]
    InvalidHeader {
        /// What the remote sent instead (lossy UTF-8 of the message).
        received: String,
    },
    /// A message announced a length above the configured bound.
    #[error("multistream-select message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLong {
        /// The announced length (or a lower bound of it, when the length prefix itself
        /// is already too long to be within the limit).
        len: usize,
        /// The configured maximum ([`crate::Config::with_max_message_len`]).
        max: usize,
    },
    /// A message was malformed (bad varint, empty, missing `\n`, not UTF-8, ...).
    #[error("invalid multistream-select message: {0}")]
    InvalidMessage(String),
    /// A well-formed message arrived where the protocol does not allow it.
    #[error("unexpected multistream-select message {received:?} while {expected}")]
    UnexpectedMessage {
        /// What the remote sent.
        received: String,
        /// What we were waiting for.
        expected: &'static str,
    },
    /// More `na` (or `ls`) rounds than [`crate::Config::with_max_na_rounds`] allows.
    #[error("more than {max} rejected proposals in one negotiation")]
    TooManyRounds {
        /// The configured maximum.
        max: usize,
    },
    /// A protocol id we were asked to propose or to list is not valid.
    #[error("invalid protocol id {id:?}: {reason}")]
    InvalidProtocolId {
        /// The offending id.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Simultaneous open: both sides drew the same random number.
    #[error("simultaneous open: both peers drew the same number, no initiator could be chosen")]
    SimultaneousOpenTie,
    /// A lazy negotiation failed earlier; this is the error repeated on later calls.
    #[error("the lazy multistream-select negotiation failed earlier: {0}")]
    FailedEarlier(String),
}

impl NegotiationError {
    /// The [`io::ErrorKind`] this error maps to when converted into an [`io::Error`].
    ///
    /// - [`NegotiationError::Io`] gives the kind of the inner error;
    /// - [`NegotiationError::ConnectionClosed`] gives [`io::ErrorKind::UnexpectedEof`];
    /// - [`NegotiationError::NoProtocolAccepted`] gives
    ///   [`io::ErrorKind::ConnectionRefused`] (the remote refused our protocol, e.g.
    ///   answered `na` to a lazy proposal);
    /// - every protocol violation gives [`io::ErrorKind::InvalidData`];
    /// - invalid protocol ids of our own give [`io::ErrorKind::InvalidInput`];
    /// - [`NegotiationError::FailedEarlier`] gives [`io::ErrorKind::BrokenPipe`].
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            NegotiationError::Io(e) => e.kind(),
            NegotiationError::ConnectionClosed => io::ErrorKind::UnexpectedEof,
            NegotiationError::NoProtocolAccepted { .. } => io::ErrorKind::ConnectionRefused,
            NegotiationError::InvalidProtocolId { .. } => io::ErrorKind::InvalidInput,
            NegotiationError::FailedEarlier(_) => io::ErrorKind::BrokenPipe,
            NegotiationError::InvalidHeader { .. }
            | NegotiationError::MessageTooLong { .. }
            | NegotiationError::InvalidMessage(_)
            | NegotiationError::UnexpectedMessage { .. }
            | NegotiationError::TooManyRounds { .. }
            | NegotiationError::SimultaneousOpenTie => io::ErrorKind::InvalidData,
        }
    }
}

impl From<NegotiationError> for io::Error {
    /// An [`NegotiationError::Io`] becomes its inner error; every other variant becomes
    /// an `io::Error` of kind [`NegotiationError::io_kind`] whose inner error is the
    /// `NegotiationError` itself (downcastable).
    fn from(err: NegotiationError) -> io::Error {
        match err {
            NegotiationError::Io(e) => e,
            other => io::Error::new(other.io_kind(), other),
        }
    }
}
