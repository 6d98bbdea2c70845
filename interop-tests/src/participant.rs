//! Which peer implementation, transport and security protocol a test cell uses.

use std::fmt;
use std::str::FromStr;

/// A reference libp2p implementation with an interop peer program in `peers/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Impl {
    /// go-libp2p (`peers/go`, built with `go build`).
    Go,
    /// js-libp2p (`peers/js`, run with `node`).
    Js,
    /// rust-libp2p (`peers/rust`, the `rust-libp2p-peer` example).
    Rust,
}

impl Impl {
    /// All implementations, in a stable order.
    pub const ALL: [Impl; 3] = [Impl::Go, Impl::Js, Impl::Rust];

    /// The library's name, e.g. `"go-libp2p"`.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Go => "go-libp2p",
            Impl::Js => "js-libp2p",
            Impl::Rust => "rust-libp2p",
        }
    }

    /// The identify agent version the peer announces, e.g. `"go-libp2p-interop-peer"`.
    pub fn agent_version(self) -> String {
        format!("{}-interop-peer", self.name())
    }

    /// The external tools needed to build and run this peer (checked with
    /// [`require_impls`](crate::require_impls)).
    pub fn required_tools(self) -> &'static [&'static str] {
        match self {
            Impl::Go => &["go"],
            Impl::Js => &["node", "npm"],
            Impl::Rust => &[],
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The security protocol a peer is told to use (`--security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Security {
    /// libp2p Noise XX, protocol id `/noise`.
    Noise,
    /// libp2p TLS 1.3, protocol id `/tls/1.0.0`.
    Tls,
}

impl Security {
    /// Both protocols.
    pub const ALL: [Security; 2] = [Security::Noise, Security::Tls];

    /// The value of the `--security` flag: `"noise"` or `"tls"`.
    pub fn as_arg(self) -> &'static str {
        match self {
            Security::Noise => "noise",
            Security::Tls => "tls",
        }
    }

    /// The multistream-select protocol id: `"/noise"` or `"/tls/1.0.0"`.
    pub fn protocol_id(self) -> &'static str {
        match self {
            Security::Noise => "/noise",
            Security::Tls => "/tls/1.0.0",
        }
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_arg())
    }
}

/// A `--security` value that is neither `noise` nor `tls`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown security {0:?} (want noise or tls)")]
pub struct UnknownSecurity(pub String);

impl FromStr for Security {
    type Err = UnknownSecurity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "noise" => Ok(Security::Noise),
            "tls" => Ok(Security::Tls),
            other => Err(UnknownSecurity(other.to_owned())),
        }
    }
}

/// The transport a peer listens on (`--transport`); a dialer follows its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP, upgraded with the chosen [`Security`] and yamux (`/tcp/<port>`).
    Tcp,
    /// QUIC v1 (`/udp/<port>/quic-v1`): libp2p TLS and QUIC's own streams, so the
    /// `--security` flag does not apply.
    Quic,
}

impl Transport {
    /// Both transports.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Quic];

    /// The value of the `--transport` flag: `"tcp"` or `"quic"`.
    pub fn as_arg(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_arg())
    }
}

/// A `--transport` value that is neither `tcp` nor `quic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?} (want tcp or quic)")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "quic" => Ok(Transport::Quic),
            other => Err(UnknownTransport(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_round_trips_through_its_flag_value() {
        for s in Security::ALL {
            assert_eq!(s.as_arg().parse::<Security>(), Ok(s));
        }
        assert_eq!(
            "quic".parse::<Security>(),
            Err(UnknownSecurity("quic".into()))
        );
    }

    #[test]
    fn transport_round_trips_through_its_flag_value() {
        for t in Transport::ALL {
            assert_eq!(t.as_arg().parse::<Transport>(), Ok(t));
        }
        assert_eq!(
            "quic-v1".parse::<Transport>(),
            Err(UnknownTransport("quic-v1".into()))
        );
    }

    #[test]
    fn agent_versions_follow_the_contract() {
        assert_eq!(Impl::Go.agent_version(), "go-libp2p-interop-peer");
        assert_eq!(Impl::Js.agent_version(), "js-libp2p-interop-peer");
        assert_eq!(Impl::Rust.agent_version(), "rust-libp2p-interop-peer");
    }
}
