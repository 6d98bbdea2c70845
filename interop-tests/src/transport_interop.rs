//! libp2p/test-plans' transport-interop contract, as every implementation in that
//! matrix speaks it (see `shared/specs/test-plans-transport-interop.md`):
//!
//! - parameters come from the environment: `transport`, `muxer`, `security`,
//!   `is_dialer` (required), `ip` (default `0.0.0.0`), `redis_addr` (default
//!   `redis:6379`), `test_timeout_seconds` (default 180);
//! - the listener `RPUSH`es its full multiaddr (with `/p2p/`) to the redis list
//!   `listenerAddr`, serves ping, and exits non-zero if it is still running after the
//!   timeout;
//! - the dialer `BLPOP`s `listenerAddr` (with the timeout), connects, pings once and
//!   prints exactly one JSON line, `{"handshakePlusOneRTTMillis": .., "pingRTTMilllis":
//!   ..}` (the triple `l` is the contract's spelling), then exits 0; any error exits
//!   non-zero. Diagnostics go to stderr only.
//!
//! Transports: `tcp` (with `security=noise|tls` and `muxer=yamux`) and `quic-v1`
//! (libp2p TLS and QUIC's own streams: test-plans sets neither `security` nor
//! `muxer` for it, and both are ignored if set); see [`Params::stack`].
//!
//! This module holds the parts every participant shares (the parameters, the redis
//! exchange, the JSON line); `weft-transport-interop` (weft) and the reference peers'
//! `transport-interop` modes (`peers/{go,js,rust}`) are built on the same contract,
//! and `tests/transport_interop.rs` runs the matrix with a real `redis-server`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use multiaddr::{Multiaddr, Protocol};
use serde::{Deserialize, Serialize};

use crate::participant::Security;

/// The redis list the listener pushes its address to and the dialer pops it from.
pub const LISTENER_ADDR_KEY: &str = "listenerAddr";
/// `redis_addr` when the variable is unset (the docker compose service name).
pub const DEFAULT_REDIS_ADDR: &str = "redis:6379";
/// `test_timeout_seconds` when the variable is unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);
/// Exit code of a participant that failed (any error, or the timeout).
pub const EXIT_FAILURE: i32 = 1;
/// How long one attempt to reach redis may take (the whole wait is the test timeout).
const REDIS_CONNECT_ATTEMPT: Duration = Duration::from_secs(1);
/// Pause between attempts to reach redis (it may start after us).
const REDIS_RETRY: Duration = Duration::from_millis(100);

/// A failure to follow the contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A required variable is not set.
    #[error("environment variable `{0}` is not set")]
    Missing(&'static str),
    /// A variable has a value we cannot use.
    #[error("environment variable `{name}`={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A variable names something this participant does not implement (test-plans
    /// counts the cell as failed).
    #[error("{name}={value:?} is not supported (supported: {supported})")]
    Unsupported {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is.
        supported: &'static str,
    },
    /// Talking to redis failed.
    #[error("redis at {addr}: {source}")]
    Redis {
        /// `redis_addr`.
        addr: String,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// Nothing arrived (or redis stayed unreachable) within the test timeout.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// The listener's address in redis is not a multiaddr.
    #[error("listenerAddr {value:?} is not a multiaddr: {reason}")]
    BadListenerAddr {
        /// What redis held.
        value: String,
        /// The parse error.
        reason: String,
    },
}

/// The stack a cell asks for, from `transport`, `security` and `muxer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// `transport=tcp`, `security=noise|tls`, `muxer=yamux`.
    Tcp {
        /// The security protocol.
        security: Security,
    },
    /// `transport=quic-v1`: secure and multiplexed on its own.
    Quic,
}

impl Stack {
    /// The address a listener binds: `/ip4|ip6/<ip>/tcp/0` or `/ip4|ip6/<ip>/udp/0/quic-v1`.
    pub fn listen_addr(self, ip: IpAddr) -> Multiaddr {
        let addr = Multiaddr::empty().with(Protocol::from(ip));
        match self {
            Stack::Tcp { .. } => addr.with(Protocol::Tcp(0)),
            Stack::Quic => addr.with(Protocol::Udp(0)).with(Protocol::QuicV1),
        }
    }
}

/// The parameters of one participant, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `transport`: `tcp`, `quic-v1`, `ws`, ...
    pub transport: String,
    /// `security`: `noise`, `tls` (absent for natively secure transports).
    pub security: Option<String>,
    /// `muxer`: `yamux`, `mplex` (absent for natively multiplexed transports).
    pub muxer: Option<String>,
    /// `is_dialer`.
    pub is_dialer: bool,
    /// `ip`: the address the listener binds.
    pub ip: IpAddr,
    /// `redis_addr`: `host:port` of redis.
    pub redis_addr: String,
    /// `test_timeout_seconds`.
    pub timeout: Duration,
}

impl Params {
    /// Reads the parameters from the process environment.
    pub fn from_env() -> Result<Self, ContractError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the parameters through `get` (the environment, or a table in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ContractError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.is_empty());
        let transport = non_empty("transport").ok_or(ContractError::Missing("transport"))?;
        let is_dialer = match non_empty("is_dialer").as_deref() {
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ContractError::Invalid {
                    name: "is_dialer",
                    value: other.to_owned(),
                    reason: "want `true` or `false`".into(),
                })
            }
            None => return Err(ContractError::Missing("is_dialer")),
        };
        let ip = match non_empty("ip") {
            Some(v) => v.parse().map_err(|e| ContractError::Invalid {
                name: "ip",
                value: v.clone(),
                reason: format!("{e}"),
            })?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let redis_addr = non_empty("redis_addr").unwrap_or_else(|| DEFAULT_REDIS_ADDR.into());
        let timeout = match non_empty("test_timeout_seconds") {
            Some(v) => {
                let secs: u64 = v.parse().map_err(|e| ContractError::Invalid {
                    name: "test_timeout_seconds",
                    value: v.clone(),
                    reason: format!("{e}"),
                })?;
                if secs == 0 {
                    return Err(ContractError::Invalid {
                        name: "test_timeout_seconds",
                        value: v,
                        reason: "must be positive".into(),
                    });
                }
                Duration::from_secs(secs)
            }
            None => DEFAULT_TIMEOUT,
        };
        Ok(Params {
            transport,
            security: non_empty("security"),
            muxer: non_empty("muxer"),
            is_dialer,
            ip,
            redis_addr,
            timeout,
        })
    }

    /// The stack this cell asks for, or [`ContractError::Unsupported`] for a
    /// transport, security or muxer outside `tcp` x `noise|tls` x `yamux` and
    /// `quic-v1`.
    pub fn stack(&self) -> Result<Stack, ContractError> {
        match self.transport.as_str() {
            "quic-v1" => Ok(Stack::Quic),
            "tcp" => {
                let muxer = self.muxer.as_deref().unwrap_or("");
                if muxer != "yamux" {
                    return Err(ContractError::Unsupported {
                        name: "muxer",
                        value: muxer.to_owned(),
                        supported: "yamux",
                    });
                }
                let security = self.security.as_deref().unwrap_or("");
                let security =
                    security
                        .parse::<Security>()
                        .map_err(|_| ContractError::Unsupported {
                            name: "security",
                            value: security.to_owned(),
                            supported: "noise, tls",
                        })?;
                Ok(Stack::Tcp { security })
            }
            other => Err(ContractError::Unsupported {
                name: "transport",
                value: other.to_owned(),
                supported: "tcp, quic-v1",
            }),
        }
    }

    /// Connects to redis, retrying until it answers or the test timeout passes (under
    /// docker compose redis may come up after us). Requests on the connection may take
    /// as long as the test timeout (a `BLPOP` waits that long).
    pub async fn redis(&self) -> Result<redis::aio::MultiplexedConnection, ContractError> {
        let redis_error = |source| ContractError::Redis {
            addr: self.redis_addr.clone(),
            source,
        };
        let client =
            redis::Client::open(format!("redis://{}/", self.redis_addr)).map_err(redis_error)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECT_ATTEMPT))
            .set_response_timeout(Some(self.timeout + REDIS_CONNECT_ATTEMPT));
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(connection) => return Ok(connection),
                Err(e) if tokio::time::Instant::now() + REDIS_RETRY >= deadline => {
                    return Err(redis_error(e))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "redis not reachable yet");
                    tokio::time::sleep(REDIS_RETRY).await;
                }
            }
        }
    }
}

/// The listener's step 3: `RPUSH listenerAddr <addr>`.
pub async fn publish_listener_addr(
    redis: &mut redis::aio::MultiplexedConnection,
    redis_addr: &str,
    addr: &Multiaddr,
) -> Result<(), ContractError> {
    redis::cmd("RPUSH")
        .arg(LISTENER_ADDR_KEY)
        .arg(addr.to_string())
        .query_async::<usize>(redis)
        .await
        .map_err(|source| ContractError::Redis {
            addr: redis_addr.to_owned(),
            source,
        })?;
    Ok(())
}

/// The dialer's step 3: `BLPOP listenerAddr <timeout>`.
pub async fn wait_listener_addr(
    redis: &mut redis::aio::MultiplexedConnection,
    redis_addr: &str,
    timeout: Duration,
) -> Result<Multiaddr, ContractError> {
    let popped = redis::cmd("BLPOP")
        .arg(LISTENER_ADDR_KEY)
        .arg(timeout.as_secs_f64())
        .query_async::<Option<(String, String)>>(redis)
        .await
        .map_err(|source| ContractError::Redis {
            addr: redis_addr.to_owned(),
            source,
        })?;
    let (_key, value) = popped.ok_or(ContractError::Timeout(timeout, "listenerAddr"))?;
    value
        .trim()
        .parse()
        .map_err(|e: multiaddr::Error| ContractError::BadListenerAddr {
            reason: e.to_string(),
            value,
        })
}

/// The dialer's one JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DialerReport {
    /// From just before the dial to the end of the first ping, in milliseconds.
    #[serde(rename = "handshakePlusOneRTTMillis")]
    pub handshake_plus_one_rtt_ms: f64,
    /// The first ping's round trip, in milliseconds.
    #[serde(rename = "pingRTTMilllis")]
    pub ping_rtt_ms: f64,
}

impl DialerReport {
    /// The report from the two measured durations.
    pub fn new(handshake_plus_one_rtt: Duration, ping_rtt: Duration) -> Self {
        DialerReport {
            handshake_plus_one_rtt_ms: handshake_plus_one_rtt.as_secs_f64() * 1e3,
            ping_rtt_ms: ping_rtt.as_secs_f64() * 1e3,
        }
    }

    /// The line to print (no newline).
    pub fn to_json_line(&self) -> String {
        // Two finite floats always serialise.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Parses a dialer's stdout: exactly one non-empty line, this JSON object.
    pub fn parse_stdout(stdout: &str) -> Result<Self, String> {
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        let [line] = lines.as_slice() else {
            return Err(format!(
                "want exactly one stdout line, got {}: {stdout:?}",
                lines.len()
            ));
        };
        serde_json::from_str(line).map_err(|e| format!("bad report {line:?}: {e}"))
    }
}

/// The address a listener bound to `ip` should publish, from the addresses its stack
/// reports: an unspecified bind (`0.0.0.0`) is published as the first non-loopback
/// interface address (what a container's peer can reach), or loopback if there is none.
pub fn publishable_addr(reported: &[Multiaddr]) -> Option<Multiaddr> {
    let ip_of = |a: &Multiaddr| {
        a.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })
    };
    let concrete = |a: &&Multiaddr| ip_of(a).is_some_and(|ip| !ip.is_unspecified());
    if let Some(a) = reported
        .iter()
        .filter(concrete)
        .find(|a| ip_of(a).is_some_and(|ip| !ip.is_loopback()))
        .or_else(|| reported.iter().find(concrete))
    {
        return Some(a.clone());
    }
    // Only unspecified addresses: substitute an interface address.
    let first = reported.first()?;
    let interface = if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .filter(|i| i.ip().is_ipv4() && !i.is_loopback())
        .map(|i| i.ip())
        .next()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Some(
        first
            .iter()
            .map(|p| match (p, interface) {
                (Protocol::Ip4(_), IpAddr::V4(v4)) => Protocol::Ip4(v4),
                (other, _) => other,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn params(vars: &[(&str, &str)]) -> Result<Params, ContractError> {
        let table: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::from_lookup(|k| table.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let p = params(&[
            ("transport", "tcp"),
            ("security", "noise"),
            ("muxer", "yamux"),
            ("is_dialer", "false"),
        ])
        .unwrap();
        assert_eq!(p.ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(p.redis_addr, "redis:6379");
        assert_eq!(p.timeout, Duration::from_secs(180));
        assert!(!p.is_dialer);
        assert_eq!(p.security.as_deref(), Some("noise"));
    }

    #[test]
    fn every_variable_is_read() {
        let p = params(&[
            ("transport", "quic-v1"),
            ("is_dialer", "true"),
            ("ip", "127.0.0.1"),
            ("redis_addr", "127.0.0.1:6380"),
            ("test_timeout_seconds", "30"),
        ])
        .unwrap();
        assert_eq!(p.transport, "quic-v1");
        assert!(p.is_dialer);
        assert_eq!(p.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(p.redis_addr, "127.0.0.1:6380");
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!((p.security, p.muxer), (None, None));
    }

    #[test]
    fn stacks_follow_the_transport() {
        let tcp = |security: &str, muxer: &str| {
            params(&[
                ("transport", "tcp"),
                ("security", security),
                ("muxer", muxer),
                ("is_dialer", "true"),
            ])
            .unwrap()
            .stack()
        };
        assert_eq!(
            tcp("tls", "yamux").unwrap(),
            Stack::Tcp {
                security: Security::Tls
            }
        );
        assert!(matches!(
            tcp("plaintext", "yamux"),
            Err(ContractError::Unsupported {
                name: "security",
                ..
            })
        ));
        assert!(matches!(
            tcp("noise", "mplex"),
            Err(ContractError::Unsupported { name: "muxer", .. })
        ));
        // test-plans sets neither security nor muxer for QUIC.
        let quic = params(&[("transport", "quic-v1"), ("is_dialer", "false")]).unwrap();
        assert_eq!(quic.stack().unwrap(), Stack::Quic);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            Stack::Quic.listen_addr(ip).to_string(),
            "/ip4/127.0.0.1/udp/0/quic-v1"
        );
        assert_eq!(
            tcp("noise", "yamux").unwrap().listen_addr(ip).to_string(),
            "/ip4/127.0.0.1/tcp/0"
        );
        let ws = params(&[("transport", "ws"), ("is_dialer", "true")]).unwrap();
        let err = ws.stack().unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            params(&[("is_dialer", "true")]),
            Err(ContractError::Missing("transport"))
        ));
        assert!(matches!(
            params(&[("transport", "tcp")]),
            Err(ContractError::Missing("is_dialer"))
        ));
        assert!(matches!(
            params(&[("transport", "tcp"), ("is_dialer", "yes")]),
            Err(ContractError::Invalid {
                name: "is_dialer",
                ..
            })
        ));
        assert!(matches!(
            params(&[
                ("transport", "tcp"),
                ("is_dialer", "true"),
                ("test_timeout_seconds", "0")
            ]),
            Err(ContractError::Invalid {
                name: "test_timeout_seconds",
                ..
            })
        ));
    }

    #[test]
    fn the_json_line_uses_the_contracts_spelling() {
        let report = DialerReport::new(Duration::from_millis(12), Duration::from_micros(500));
        let line = report.to_json_line();
        assert_eq!(
            line,
            r#"{"handshakePlusOneRTTMillis":12.0,"pingRTTMilllis":0.5}"#
        );
        assert_eq!(DialerReport::parse_stdout(&format!("{line}\n")), Ok(report));
        assert!(DialerReport::parse_stdout(&format!("{line}\n{line}\n")).is_err());
        assert!(DialerReport::parse_stdout(r#"{"pingRTTMillis":1.0}"#).is_err());
    }

    #[test]
    fn unspecified_binds_publish_a_concrete_address() {
        let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let lan: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().unwrap();
        assert_eq!(
            publishable_addr(&[loopback.clone(), lan.clone()]),
            Some(lan)
        );
        assert_eq!(
            publishable_addr(std::slice::from_ref(&loopback)),
            Some(loopback)
        );
        let any: Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
        let published = publishable_addr(&[any]).unwrap();
        assert!(!published.to_string().contains("0.0.0.0"), "{published}");
        assert!(published.to_string().ends_with("/tcp/4001"), "{published}");
        assert_eq!(publishable_addr(&[]), None);
    }
}
