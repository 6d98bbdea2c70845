//! Typed errors of the server and of the client, each naming the step.

use crate::codec::CodecError;
use std::time::Duration;

/// A step of an AutoNAT exchange, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Reading the client's DialRequest (server).
    ReadRequest,
    /// Reading the client's dial data (server).
    ReadDialData,
    /// Answering on the dial-request stream (server).
    Answer,
    /// Sending the DialRequest (client).
    SendRequest,
    /// Reading the server's DialDataRequest or DialResponse (client).
    ReadResponse,
    /// Sending dial data (client).
    SendDialData,
    /// Waiting for the dial-back that a successful DialResponse promises (client).
    AwaitDialBack,
    /// The dial-back stream: the nonce and its acknowledgement (either side).
    DialBack,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::ReadRequest => "reading the dial request",
            Step::ReadDialData => "reading the dial data",
            Step::Answer => "answering the dial request",
            Step::SendRequest => "sending the dial request",
            Step::ReadResponse => "reading the server's answer",
            Step::SendDialData => "sending the dial data",
            Step::AwaitDialBack => "waiting for the dial-back",
            Step::DialBack => "the dial-back exchange",
        })
    }
}

/// Why serving one dial request failed (the server's side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
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
    /// The client broke the protocol (the stream was reset).
    #[error("{step}: {reason}")]
    Protocol {
        /// Where.
        step: Step,
        /// What was wrong.
        reason: String,
    },
}

/// Why one probe gave no verdict (the client's side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
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
    /// The server rejected the request (rate limit, resources, blocked).
    #[error("the server rejected the request")]
    Rejected,
    /// The server will not dial the address.
    #[error("the server refused to dial the address")]
    Refused,
    /// The server reported an internal error.
    #[error("the server reported an internal error")]
    Internal,
    /// The server connected but could not deliver the nonce: nothing is learnt.
    #[error("the server connected but its dial-back failed")]
    DialBackFailed,
    /// The server said it delivered the nonce, but no dial-back with our nonce
    /// arrived: its answer is discarded.
    #[error("the server reported a dial-back that never arrived")]
    NoDialBack,
    /// The dial-back arrived on a connection of another transport than the address
    /// (say, over TCP for a QUIC address): it proves nothing about the address.
    #[error("the dial-back came over {local}, not the transport of the address")]
    WrongTransport {
        /// Our address on the dial-back connection.
        local: multiaddr::Multiaddr,
    },
    /// The server asked for more dial data than we are willing to send.
    #[error("the server asked for {asked} bytes of dial data, above our limit of {limit}")]
    DialDataTooLarge {
        /// What it asked.
        asked: u64,
        /// Our limit.
        limit: u64,
    },
    /// The server broke the protocol.
    #[error("{step}: {reason}")]
    Protocol {
        /// Where.
        step: Step,
        /// What was wrong.
        reason: String,
    },
}
