//! Typed errors of the relay server and of its clients, each naming the step.

use crate::codec::CodecError;
use crate::proto::Status;
use crate::voucher::VoucherError;
use std::time::Duration;

/// A step of a relay exchange, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Reading the client's hop request.
    HopRequest,
    /// Opening the stop stream to the target.
    OpenStop,
    /// The stop exchange with the target (CONNECT, then its STATUS).
    StopExchange,
    /// Answering on the hop stream.
    HopAnswer,
    /// A client's RESERVE and its answer.
    Reserve,
    /// A client's CONNECT and its answer.
    Connect,
    /// Reading the relay's stop CONNECT, as the target.
    StopRequest,
    /// Answering the relay's stop CONNECT, as the target.
    StopAnswer,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::HopRequest => "reading the hop request",
            Step::OpenStop => "opening the stop stream",
            Step::StopExchange => "the stop exchange",
            Step::HopAnswer => "answering the hop request",
            Step::Reserve => "reserving",
            Step::Connect => "connecting through the relay",
            Step::StopRequest => "reading the stop request",
            Step::StopAnswer => "answering the stop request",
        })
    }
}

/// Why serving one hop stream failed (the relay's side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HopError {
    /// A message could not be read or written.
    #[error("{step}: {source}")]
    Codec {
        /// Where.
        step: Step,
        /// What.
        #[source]
        source: CodecError,
    },
    /// A step took too long.
    #[error("{step}: timed out after {after:?}")]
    Timeout {
        /// Where.
        step: Step,
        /// The timeout.
        after: Duration,
    },
    /// The request was refused (and the client told so with `status`).
    #[error("refused with {status}: {reason}")]
    Refused {
        /// What the client was answered.
        status: Status,
        /// Why.
        reason: String,
    },
    /// The circuit's streams failed while relaying.
    #[error("relaying failed: {0}")]
    Splice(#[source] std::io::Error),
}

/// Why a client's exchange with a relay (reserve, connect, accepting a stop) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A message could not be read or written.
    #[error("{step}: {source}")]
    Codec {
        /// Where.
        step: Step,
        /// What.
        #[source]
        source: CodecError,
    },
    /// A step took too long.
    #[error("{step}: timed out after {after:?}")]
    Timeout {
        /// Where.
        step: Step,
        /// The timeout.
        after: Duration,
    },
    /// The relay answered with a status other than OK.
    #[error("{step}: the relay answered {status}")]
    Refused {
        /// Where.
        step: Step,
        /// The answer.
        status: Status,
    },
    /// A message lacked a field or had the wrong type.
    #[error("{step}: {reason}")]
    Malformed {
        /// Where.
        step: Step,
        /// What was wrong.
        reason: &'static str,
    },
    /// The reservation's voucher did not verify.
    #[error("the reservation's voucher is invalid: {0}")]
    Voucher(#[from] VoucherError),
}
