//! The typed errors of an upgrade, each naming the step that failed.

use crate::muxer::MuxerError;
use crate::security::SecurityError;
use std::fmt;
use std::time::Duration;
use weft_mss::NegotiationError;

/// A step of the upgrade pipeline, as named in errors and tracing spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpgradeStep {
    /// Simultaneous open: choosing which side is the initiator.
    SimultaneousOpen,
    /// multistream-select of the security protocol on the raw stream.
    NegotiateSecurity,
    /// The security handshake (Noise, TLS).
    Handshake,
    /// multistream-select of the muxer over the secure channel.
    NegotiateMuxer,
    /// Setting up the muxer on the secure channel.
    Muxer,
}

impl fmt::Display for UpgradeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpgradeStep::SimultaneousOpen => "simultaneous open",
            UpgradeStep::NegotiateSecurity => "security negotiation",
            UpgradeStep::Handshake => "security handshake",
            UpgradeStep::NegotiateMuxer => "muxer negotiation",
            UpgradeStep::Muxer => "muxer setup",
        })
    }
}

/// Why an upgrade failed, by step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Configuration: the upgrader was built without any security protocol.
    #[error("the upgrader has no security protocol configured")]
    NoSecurity,
    /// Configuration: the upgrader was built without any muxer.
    #[error("the upgrader has no stream muxer configured")]
    NoMuxer,
    /// Configuration: two security protocols or two muxers share a protocol id.
    #[error("the protocol id {0:?} is configured twice")]
    DuplicateProtocol(String),
    /// Simultaneous open failed (for example both sides drew the same number).
    #[error("simultaneous open failed: {0}")]
    SimultaneousOpen(#[source] NegotiationError),
    /// multistream-select of the security protocol failed (including a lazy
    /// proposal the remote refused).
    #[error("security protocol negotiation failed: {0}")]
    NegotiateSecurity(#[source] NegotiationError),
    /// The security handshake failed.
    #[error("{protocol} handshake failed: {source}")]
    Handshake {
        /// The security protocol id.
        protocol: String,
        /// What went wrong.
        #[source]
        source: SecurityError,
    },
    /// multistream-select of the muxer failed.
    #[error("muxer negotiation failed: {0}")]
    NegotiateMuxer(#[source] NegotiationError),
    /// A step produced a protocol id we did not offer (for example a security
    /// implementation reported an inlined muxer we do not have).
    #[error("{step} chose {protocol:?}, which we did not offer")]
    UnknownProtocol {
        /// The step that produced it.
        step: UpgradeStep,
        /// The protocol id.
        protocol: String,
    },
    /// Setting up the muxer failed.
    #[error("muxer setup failed: {0}")]
    Muxer(#[source] MuxerError),
    /// The whole upgrade did not finish within the configured timeout.
    #[error("the connection upgrade timed out after {after:?} during the {step}")]
    Timeout {
        /// The step in progress when time ran out.
        step: UpgradeStep,
        /// The configured timeout.
        after: Duration,
    },
}

impl UpgradeError {
    /// The step this error comes from, if it comes from one (configuration errors
    /// do not).
    pub fn step(&self) -> Option<UpgradeStep> {
        match self {
            UpgradeError::NoSecurity
            | UpgradeError::NoMuxer
            | UpgradeError::DuplicateProtocol(_) => None,
            UpgradeError::SimultaneousOpen(_) => Some(UpgradeStep::SimultaneousOpen),
            UpgradeError::NegotiateSecurity(_) => Some(UpgradeStep::NegotiateSecurity),
            UpgradeError::Handshake { .. } => Some(UpgradeStep::Handshake),
            UpgradeError::NegotiateMuxer(_) => Some(UpgradeStep::NegotiateMuxer),
            UpgradeError::Muxer(_) => Some(UpgradeStep::Muxer),
            UpgradeError::UnknownProtocol { step, .. } | UpgradeError::Timeout { step, .. } => {
                Some(*step)
            }
        }
    }
}
