//! Errors of `weft dial` and `weft perf` for people: the address, the step that
//! failed, and the fix when there is an obvious one.
//!
//! The host's errors are read through their source chain (an `io::Error`, a
//! [`SecurityError`], an [`UpgradeError`]), so the advice holds however the dial
//! error that wraps them is shaped.

use std::error::Error;
use std::sync::Arc;
use weft_host::{Multiaddr, PeerId, Protocol};
use weft_upgrader::{SecurityError, UpgradeError};

/// What went wrong, found in an error's source chain.
#[derive(Debug, PartialEq, Eq)]
enum Cause {
    /// Nothing listens there.
    Refused,
    /// The handshake proved another peer.
    WrongPeer { expected: PeerId, actual: PeerId },
    /// An upgrade step failed.
    Upgrade(String),
    /// Nothing we have advice for.
    Other,
}

fn cause(error: &(dyn Error + 'static)) -> Cause {
    let mut upgrade_step = None;
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Cause::Refused;
            }
        }
        if let Some(SecurityError::PeerIdMismatch { expected, actual }) =
            e.downcast_ref::<SecurityError>()
        {
            return Cause::WrongPeer {
                expected: *expected,
                actual: *actual,
            };
        }
        let upgrade = e
            .downcast_ref::<UpgradeError>()
            .or_else(|| e.downcast_ref::<Arc<UpgradeError>>().map(|a| a.as_ref()));
        if let Some(step) = upgrade.and_then(|u| u.step()) {
            upgrade_step.get_or_insert(step.to_string());
        }
        current = e.source();
    }
    upgrade_step.map_or(Cause::Other, Cause::Upgrade)
}

/// `addr` without a trailing `/p2p/<peer id>`.
fn without_peer_id(addr: &Multiaddr) -> Multiaddr {
    let mut bare = addr.clone();
    if let Some(Protocol::P2p(_)) = bare.iter().last() {
        bare.pop();
    }
    bare
}

fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

/// The message for a failed dial of `addr`.
pub fn dial_failed(addr: &Multiaddr, error: &(dyn Error + 'static)) -> String {
    match cause(error) {
        Cause::Refused => {
            let hint = match tcp_port(addr) {
                Some(port) => format!("is `weft listen` running on port {port}?"),
                None => "is `weft listen` running there?".to_string(),
            };
            format!("connecting to {addr} failed: connection refused: {hint}")
        }
        Cause::WrongPeer { expected, actual } => format!(
            "the peer at {} is {actual}, not {expected}: check the /p2p/ part of the \
             address (`weft listen` prints its own)",
            without_peer_id(addr)
        ),
        Cause::Upgrade(step) => format!("dialing {addr} failed in the {step}: {error}"),
        Cause::Other => format!("dialing {addr} failed: {error}"),
    }
}

/// The message for a failed step of a session with the peer at `addr`, after the
/// connection was made (`what`: "perf stream", "ping", ...).
pub fn step_failed(addr: &Multiaddr, what: &str, error: &dyn std::fmt::Display) -> String {
    format!("{what} with the peer at {addr} failed: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Multiaddr {
        "/ip4/127.0.0.1/tcp/4001".parse().unwrap()
    }

    #[derive(Debug, thiserror::Error)]
    #[error("dial failed")]
    struct Wrapper(#[source] Arc<UpgradeError>);

    #[test]
    fn a_refused_connection_asks_whether_the_listener_runs() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            dial_failed(&addr(), &refused),
            "connecting to /ip4/127.0.0.1/tcp/4001 failed: connection refused: \
             is `weft listen` running on port 4001?"
        );
        let memory: Multiaddr = "/memory/7".parse().unwrap();
        assert!(dial_failed(&memory, &refused).ends_with("is `weft listen` running there?"));
    }

    #[test]
    fn a_wrong_peer_names_both_peers_through_the_chain() {
        let (expected, actual) = (PeerId::random(), PeerId::random());
        let e = Wrapper(Arc::new(UpgradeError::Handshake {
            protocol: "/noise".into(),
            source: SecurityError::PeerIdMismatch { expected, actual },
        }));
        let msg = dial_failed(&addr().with(Protocol::P2p(expected)), &e);
        assert!(
            msg.starts_with(&format!(
                "the peer at /ip4/127.0.0.1/tcp/4001 is {actual}, not {expected}"
            )),
            "{msg}"
        );
    }

    #[test]
    fn other_upgrade_failures_name_the_step() {
        let e = Wrapper(Arc::new(UpgradeError::UnknownProtocol {
            step: weft_upgrader::UpgradeStep::NegotiateMuxer,
            protocol: "/mplex/6.7.0".into(),
        }));
        assert_eq!(
            dial_failed(&addr(), &e),
            "dialing /ip4/127.0.0.1/tcp/4001 failed in the muxer negotiation: dial failed"
        );
        let config = Wrapper(Arc::new(UpgradeError::NoMuxer));
        assert_eq!(
            dial_failed(&addr(), &config),
            "dialing /ip4/127.0.0.1/tcp/4001 failed: dial failed"
        );
    }
}
