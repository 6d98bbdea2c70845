//! The host's errors. Each names the step that failed.

use crate::transport::TransportError;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::sync::Arc;
use std::time::Duration;
use weft_connmgr::LimitError;
use weft_mss::NegotiationError;
use weft_resource_manager::ResourceError;
use weft_upgrader::{MuxerError, UpgradeError};

/// Why a dial failed. Cheap to clone: concurrent dials to one peer share one attempt
/// and all see its outcome.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// We know no address for the peer.
    #[error("no known address for peer {0}")]
    NoAddresses(PeerId),
    /// The address is ours: a host does not dial itself.
    #[error("refusing to dial our own peer id")]
    SelfDial,
    /// The connection policy refused the dial or the established connection.
    #[error("connection refused by the connection policy: {0}")]
    Limit(#[from] LimitError),
    /// The resource manager denied the connection; the error names the scope and the
    /// resource.
    #[error("connection denied by the resource manager: {0}")]
    Resource(Box<ResourceError>),
    /// The transport could not connect.
    #[error("transport error dialing {addr}: {source}")]
    Transport {
        /// The address dialed.
        addr: Multiaddr,
        /// The transport's error.
        #[source]
        source: Arc<TransportError>,
    },
    /// The connection could not be upgraded.
    #[error("upgrade of the connection to {addr} failed: {source}")]
    Upgrade {
        /// The address dialed.
        addr: Multiaddr,
        /// Which upgrade step failed, and why.
        #[source]
        source: Arc<UpgradeError>,
    },
    /// The dial (or one address attempt) took too long.
    #[error("dialing {addr} timed out after {after:?}")]
    Timeout {
        /// The address, or the peer, dialed.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// Every address failed or was skipped; the reason per address. (A dial of a
    /// single address reports that address's own error instead.)
    #[error("all {} addresses failed: {}", .0.len(), summarize(.0))]
    AllFailed(Vec<(Multiaddr, DialError)>),
    /// The peer (or, inside [`DialError::AllFailed`], one address) failed recently
    /// and is backed off; dial again after `remaining`, or with
    /// [`DialOpts::with_ignore_backoff`](crate::DialOpts::with_ignore_backoff).
    #[error("backed off after failed dials{}: {remaining:?} left", backoff_target(.peer))]
    Backoff {
        /// The peer, when known.
        peer: Option<PeerId>,
        /// How long the backoff still runs.
        remaining: Duration,
    },
    /// The address was left out before any attempt (no transport dials it, no peer
    /// can be reached at it, or it names another peer).
    #[error("not dialing {addr}: {reason}")]
    Rejected {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: crate::dial::rank::Rejection,
    },
    /// A `/dns*` or `/dnsaddr` address did not resolve.
    #[error("resolving {addr} failed: {source}")]
    Resolve {
        /// The address.
        addr: Multiaddr,
        /// Why.
        #[source]
        source: crate::dial::dns::DnsError,
    },
    /// The host is shutting down.
    #[error("the host is shutting down")]
    Shutdown,
}

impl From<ResourceError> for DialError {
    fn from(e: ResourceError) -> Self {
        DialError::Resource(Box::new(e))
    }
}

impl From<ResourceError> for StreamError {
    fn from(e: ResourceError) -> Self {
        StreamError::Resource(Box::new(e))
    }
}

fn backoff_target(peer: &Option<PeerId>) -> String {
    match peer {
        Some(p) => format!(" (peer {p})"),
        None => String::new(),
    }
}

fn summarize(errors: &[(Multiaddr, DialError)]) -> String {
    errors
        .iter()
        .map(|(a, e)| format!("{a}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why listening failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// No transport can listen on the address.
    #[error("no transport can listen on {0}")]
    Unsupported(Multiaddr),
    /// The address carries a `/p2p/` suffix that is not our peer id.
    #[error("the listen address names peer {0}, which is not this host")]
    WrongPeerId(PeerId),
    /// The transport failed.
    #[error("listening failed: {0}")]
    Transport(#[from] TransportError),
    /// The host is shutting down.
    #[error("the host is shutting down")]
    Shutdown,
}

/// Why opening a stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No protocol ids were given.
    #[error("no protocol ids to propose")]
    NoProtocols,
    /// There was no connection and dialing failed.
    #[error("could not connect: {0}")]
    Dial(#[from] DialError),
    /// The resource manager denied the stream; the error names the scope and the
    /// resource.
    #[error("stream denied by the resource manager: {0}")]
    Resource(Box<ResourceError>),
    /// The muxer could not open a stream.
    #[error("could not open a stream: {0}")]
    Muxer(#[from] MuxerError),
    /// Protocol negotiation failed (for example, the remote supports none of them).
    #[error("protocol negotiation failed: {0}")]
    Negotiation(#[from] NegotiationError),
    /// Negotiation did not finish in time.
    #[error("protocol negotiation timed out after {0:?}")]
    Timeout(Duration),
}

/// Why building a host failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No security protocol was configured (enable the `noise` or `tls` feature, or
    /// add one with `security`).
    #[error("no security protocol configured")]
    NoSecurity,
    /// No muxer was configured (enable the `yamux` feature or add one with `muxer`).
    #[error("no stream muxer configured")]
    NoMuxer,
    /// A security protocol could not be set up.
    #[error("could not set up {protocol}: {reason}")]
    Security {
        /// Which protocol.
        protocol: &'static str,
        /// Why.
        reason: String,
    },
    /// A component rejected its configuration.
    #[error("invalid {component} configuration: {reason}")]
    Config {
        /// Which component.
        component: &'static str,
        /// Why.
        reason: String,
    },
    /// `build` was called outside a tokio runtime.
    #[error("a host must be built inside a tokio runtime")]
    NoRuntime,
}
