//! Resolving `/dns`, `/dns4`, `/dns6` and `/dnsaddr` addresses before they are
//! ranked.
//!
//! The host takes a [`Resolver`] (the `dns` feature supplies one on
//! `hickory-resolver`, [`HickoryResolver`](super::HickoryResolver)); without one,
//! `/dns*` addresses go to the transports as they are (the TCP transport asks the
//! system) and `/dnsaddr` addresses are not dialable.
//!
//! `/dnsaddr/<domain>` is the TXT records `dnsaddr=<multiaddr>` at
//! `_dnsaddr.<domain>` (the addressing spec), followed recursively up to
//! [`DnsLimits::max_depth`] levels and [`DnsLimits::max_addrs`] addresses in all.
//! When the peer is known (from the dial, or the address's own `/p2p/` suffix), only
//! entries for that peer (or for no peer in particular) are kept. Every lookup has
//! [`DnsLimits::lookup_timeout`].

use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::net::IpAddr;
use std::time::Duration;
use tracing::debug;

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The lookup failed (no such name, no answer, a server error).
    #[error("looking up {name} failed: {reason}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// Why.
        reason: String,
    },
    /// The lookup took longer than [`DnsLimits::lookup_timeout`].
    #[error("looking up {name} timed out after {after:?}")]
    Timeout {
        /// The name looked up.
        name: String,
        /// The timeout.
        after: Duration,
    },
    /// `/dnsaddr` records pointed at more `/dnsaddr` records than
    /// [`DnsLimits::max_depth`] allows.
    #[error("{name}: /dnsaddr nested deeper than {max_depth} levels")]
    TooDeep {
        /// The name at which the limit was hit.
        name: String,
        /// The limit.
        max_depth: usize,
    },
}

/// A DNS resolver: the two lookups the dialer needs.
#[async_trait::async_trait]
pub trait Resolver: Send + Sync + 'static {
    /// The IPv4 and IPv6 addresses of `name`.
    async fn lookup_ip(&self, name: &str) -> Result<Vec<IpAddr>, DnsError>;
    /// The TXT records of `name`, each record's strings joined.
    async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, DnsError>;
}

/// Bounds on resolving one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsLimits {
    /// How deep `/dnsaddr` records may point at further `/dnsaddr` records
    /// (default 4).
    pub max_depth: usize,
    /// The most addresses one address resolves to, all levels together (default 32).
    pub max_addrs: usize,
    /// TXT records read per `/dnsaddr` lookup (default 64); longer answers are cut.
    pub max_txt_records: usize,
    /// One lookup (default 5 s).
    pub lookup_timeout: Duration,
}

impl Default for DnsLimits {
    fn default() -> Self {
        DnsLimits {
            max_depth: 4,
            max_addrs: 32,
            max_txt_records: 64,
            lookup_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether the address starts with a name this module resolves.
pub fn is_name(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_))
    )
}

fn peer_suffix(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

fn rest_of(addr: &Multiaddr) -> impl Iterator<Item = Protocol<'_>> {
    addr.iter().skip(1)
}

/// Resolves `addr` to addresses that start with an IP address (or with anything that
/// is not a name, kept as it is). `peer`: the peer dialed, if known.
pub async fn resolve(
    resolver: &dyn Resolver,
    addr: &Multiaddr,
    peer: Option<PeerId>,
    limits: &DnsLimits,
) -> Result<Vec<Multiaddr>, DnsError> {
    let mut out = Vec::new();
    let peer = peer.or_else(|| peer_suffix(addr));
    resolve_into(resolver, addr.clone(), peer, limits, 0, &mut out).await?;
    Ok(out)
}

fn resolve_into<'a>(
    resolver: &'a dyn Resolver,
    addr: Multiaddr,
    peer: Option<PeerId>,
    limits: &'a DnsLimits,
    depth: usize,
    out: &'a mut Vec<Multiaddr>,
) -> BoxFuture<'a, Result<(), DnsError>> {
    async move {
        if out.len() >= limits.max_addrs {
            return Ok(());
        }
        let timed = |name: String| {
            move |_| DnsError::Timeout {
                name,
                after: limits.lookup_timeout,
            }
        };
        match addr.iter().next() {
            Some(Protocol::Dnsaddr(domain)) => {
                if depth >= limits.max_depth {
                    return Err(DnsError::TooDeep {
                        name: domain.to_string(),
                        max_depth: limits.max_depth,
                    });
                }
                let name = format!("_dnsaddr.{domain}");
                let records =
                    tokio::time::timeout(limits.lookup_timeout, resolver.lookup_txt(&name))
                        .await
                        .map_err(timed(name.clone()))??;
                let mut first_error = None;
                let mut found_any = false;
                for record in records.iter().take(limits.max_txt_records) {
                    let Some(text) = record.strip_prefix("dnsaddr=") else {
                        continue;
                    };
                    let entry: Multiaddr = match text.parse() {
                        Ok(a) => a,
                        Err(e) => {
                            debug!(%name, record = %text, error = %e, "ignoring a malformed dnsaddr record");
                            continue;
                        }
                    };
                    if let (Some(want), Some(named)) = (peer, peer_suffix(&entry)) {
                        if want != named {
                            continue;
                        }
                    }
                    found_any = true;
                    if let Err(e) =
                        resolve_into(resolver, entry, peer, limits, depth + 1, &mut *out).await
                    {
                        debug!(%name, error = %e, "a dnsaddr entry did not resolve");
                        first_error.get_or_insert(e);
                    }
                    if out.len() >= limits.max_addrs {
                        break;
                    }
                }
                match first_error {
                    Some(e) if out.is_empty() => Err(e),
                    _ if !found_any => Err(DnsError::Lookup {
                        name,
                        reason: "no dnsaddr record for this peer".to_string(),
                    }),
                    _ => Ok(()),
                }
            }
            Some(p @ (Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_))) => {
                let (name, v4, v6) = match &p {
                    Protocol::Dns(n) => (n.to_string(), true, true),
                    Protocol::Dns4(n) => (n.to_string(), true, false),
                    Protocol::Dns6(n) => (n.to_string(), false, true),
                    _ => return Ok(()),
                };
                let ips = tokio::time::timeout(limits.lookup_timeout, resolver.lookup_ip(&name))
                    .await
                    .map_err(timed(name.clone()))??;
                let before = out.len();
                for ip in ips {
                    let first = match ip {
                        IpAddr::V4(ip) if v4 => Protocol::Ip4(ip),
                        IpAddr::V6(ip) if v6 => Protocol::Ip6(ip),
                        _ => continue,
                    };
                    let resolved: Multiaddr =
                        std::iter::once(first).chain(rest_of(&addr)).collect();
                    if !out.contains(&resolved) {
                        out.push(resolved);
                    }
                    if out.len() >= limits.max_addrs {
                        break;
                    }
                }
                if out.len() == before {
                    return Err(DnsError::Lookup {
                        name,
                        reason: "no address of the requested family".to_string(),
                    });
                }
                Ok(())
            }
            _ => {
                if !out.contains(&addr) {
                    out.push(addr);
                }
                Ok(())
            }
        }
    }
    .boxed()
}
