//! Label sets, and the functions that keep every label value in a bounded set.
//!
//! Nothing a remote controls becomes a label as it is: a protocol id is labelled by
//! the handler's registration key, a built-in or a protocol the user declared, else
//! `other`; an address by its transport and IP version; an error by its kind. Peer ids
//! and connection ids are never labels.

use multiaddr::{Multiaddr, Protocol};
use prometheus_client::encoding::EncodeLabelSet;
use std::collections::BTreeSet;
use weft_host::{ConnectionInfo, DialError, Direction};
use weft_upgrader::{UpgradeError, UpgradeStep};

/// The label of a protocol id outside the bounded set.
pub const OTHER: &str = "other";

/// The protocols every weft host speaks, always labelled by their id.
pub const BUILTIN_PROTOCOLS: [&str; 4] = [
    weft_host::identify::PROTOCOL,
    weft_host::identify::PUSH_PROTOCOL,
    weft_host::ping::PROTOCOL,
    weft_host::perf::PROTOCOL,
];

/// `inbound` or `outbound`.
pub(crate) fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

/// The transport of an address: `relay`, `webtransport`, `webrtc`, `wss`, `ws`,
/// `quic-v1`, `quic`, `tcp`, `memory`, or `other`.
pub fn transport(addr: &Multiaddr) -> &'static str {
    let mut best: Option<(u8, &'static str)> = None;
    for p in addr.iter() {
        let found = match p {
            Protocol::P2pCircuit => (9, "relay"),
            Protocol::WebTransport => (8, "webtransport"),
            Protocol::WebRTCDirect | Protocol::WebRTC => (7, "webrtc"),
            Protocol::Wss(_) | Protocol::Tls => (6, "wss"),
            Protocol::Ws(_) => (5, "ws"),
            Protocol::QuicV1 => (4, "quic-v1"),
            Protocol::Quic => (3, "quic"),
            Protocol::Tcp(_) => (2, "tcp"),
            Protocol::Memory(_) => (1, "memory"),
            _ => continue,
        };
        if best.is_none_or(|(rank, _)| found.0 > rank) {
            best = Some(found);
        }
    }
    best.map_or(OTHER, |(_, name)| name)
}

/// The IP version of an address: `ip4`, `ip6`, or `none` (memory, DNS names).
pub fn ip_version(addr: &Multiaddr) -> &'static str {
    for p in addr.iter() {
        match p {
            Protocol::Ip4(_) => return "ip4",
            Protocol::Ip6(_) => return "ip6",
            _ => {}
        }
    }
    "none"
}

/// Why a dial or an inbound connection failed, as a bounded label: `no_addresses`,
/// `self_dial`, `limit`, `resource`, `transport`, `upgrade`, `timeout`, `all_failed`,
/// `backoff`, `rejected`, `resolve`, `shutdown`, or `other`.
pub fn dial_reason(error: &DialError) -> &'static str {
    match error {
        DialError::NoAddresses(_) => "no_addresses",
        DialError::SelfDial => "self_dial",
        DialError::Limit(_) => "limit",
        DialError::Resource(_) => "resource",
        DialError::Transport { .. } => "transport",
        DialError::Upgrade { .. } => "upgrade",
        DialError::Timeout { .. } => "timeout",
        DialError::AllFailed(_) => "all_failed",
        DialError::Backoff { .. } => "backoff",
        DialError::Rejected { .. } => "rejected",
        DialError::Resolve { .. } => "resolve",
        DialError::Shutdown => "shutdown",
        _ => OTHER,
    }
}

/// The step an inbound upgrade failed in: `simultaneous_open`, `negotiate_security`,
/// `handshake`, `negotiate_muxer`, `muxer`, `config` (no step: the upgrader's own
/// configuration), or `other` (a step added later).
pub fn upgrade_step(error: &UpgradeError) -> &'static str {
    match error.step() {
        Some(UpgradeStep::SimultaneousOpen) => "simultaneous_open",
        Some(UpgradeStep::NegotiateSecurity) => "negotiate_security",
        Some(UpgradeStep::Handshake) => "handshake",
        Some(UpgradeStep::NegotiateMuxer) => "negotiate_muxer",
        Some(UpgradeStep::Muxer) => "muxer",
        Some(_) => OTHER,
        None => "config",
    }
}

/// Maps a protocol id to a bounded label.
#[derive(Debug, Clone, Default)]
pub struct ProtocolLabels {
    known: BTreeSet<String>,
}

impl ProtocolLabels {
    /// Built-ins plus `known`: protocols this node proposes or serves that should keep
    /// their own label even where no handler is registered for them (a client's
    /// outbound protocols, for example).
    pub fn new(known: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ProtocolLabels {
            known: known.into_iter().map(Into::into).collect(),
        }
    }

    /// The label of a stream: the handler's registration key if there is one, else
    /// the id itself if it is a built-in or declared, else [`OTHER`].
    pub fn label(&self, protocol: &str, handler: Option<&str>) -> String {
        match handler {
            Some(key) => key.to_string(),
            None => self.id_label(protocol).to_string(),
        }
    }

    /// The label of a bare protocol id (no handler known): itself if it is a built-in
    /// or declared, else [`OTHER`].
    pub fn id_label<'a>(&self, protocol: &'a str) -> &'a str {
        if BUILTIN_PROTOCOLS.contains(&protocol) || self.known.contains(protocol) {
            protocol
        } else {
            OTHER
        }
    }
}

/// Labels of a connection: who dialed, and what it runs on.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// See [`transport`].
    pub transport: &'static str,
    /// The negotiated security protocol (one of the host's own, so bounded).
    pub security: String,
    /// The negotiated muxer (one of the host's own, so bounded).
    pub muxer: String,
    /// See [`ip_version`].
    pub ip_version: &'static str,
}

impl ConnectionLabels {
    /// The labels of a connection.
    pub fn of(info: &ConnectionInfo) -> Self {
        ConnectionLabels {
            direction: direction(info.direction),
            transport: transport(&info.remote_addr),
            security: info.security.clone(),
            muxer: info.muxer.clone(),
            ip_version: ip_version(&info.remote_addr),
        }
    }
}

/// Labels of a stream: its protocol label and who opened it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// See [`ProtocolLabels::label`].
    pub protocol: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
}

/// Labels of a byte counter: the stream's protocol label and the way the bytes went.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByteLabels {
    /// See [`ProtocolLabels::label`].
    pub protocol: String,
    /// `sent` or `received`.
    pub direction: &'static str,
}

/// One label, `reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// See [`dial_reason`].
    pub reason: &'static str,
}

/// One label, `step`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// See [`upgrade_step`].
    pub step: &'static str,
}

/// Labels of an identify exchange.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IdentifyLabels {
    /// `request` (ours, after connecting) or `push` (the remote's).
    pub kind: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn transports_and_ip_versions_are_named_from_the_address() {
        let cases = [
            ("/ip4/127.0.0.1/tcp/4001", "tcp", "ip4"),
            ("/ip6/::1/tcp/4001/ws", "ws", "ip6"),
            ("/ip4/1.2.3.4/udp/1/quic-v1", "quic-v1", "ip4"),
            ("/memory/7", "memory", "none"),
            (
                "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
                "relay",
                "ip4",
            ),
            ("/dns4/example.com/tcp/443/tls/ws", "wss", "none"),
            ("/ip4/1.2.3.4/udp/1", "other", "ip4"),
        ];
        for (a, t, ip) in cases {
            assert_eq!((transport(&addr(a)), ip_version(&addr(a))), (t, ip), "{a}");
        }
    }

    #[test]
    fn protocol_labels_stay_in_the_bounded_set() {
        let labels = ProtocolLabels::new(["/echo/1.0.0"]);
        assert_eq!(labels.label("/chat/7", Some("/chat")), "/chat");
        assert_eq!(labels.label("/ipfs/ping/1.0.0", None), "/ipfs/ping/1.0.0");
        assert_eq!(labels.label("/echo/1.0.0", None), "/echo/1.0.0");
        assert_eq!(labels.label("/whatever/a-peer-chose", None), OTHER);
        let distinct: BTreeSet<String> = (0..10_000)
            .map(|i| labels.label(&format!("/flood/{i}"), None))
            .collect();
        assert_eq!(distinct.len(), 1);
    }

    #[test]
    fn dial_reasons_are_bounded() {
        assert_eq!(dial_reason(&DialError::SelfDial), "self_dial");
        assert_eq!(dial_reason(&DialError::Shutdown), "shutdown");
        assert_eq!(
            dial_reason(&DialError::Backoff {
                peer: None,
                remaining: std::time::Duration::from_secs(1)
            }),
            "backoff"
        );
        assert_eq!(
            dial_reason(&DialError::Timeout {
                addr: "x".into(),
                after: std::time::Duration::from_secs(1)
            }),
            "timeout"
        );
        assert_eq!(dial_reason(&DialError::AllFailed(Vec::new())), "all_failed");
    }
}
