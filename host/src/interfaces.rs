//! The addresses a listener on `0.0.0.0` or `::` can be reached at: one per address
//! of the machine's interfaces, so that what the host reports and identify
//! advertises is dialable (an unspecified address is not).
//!
//! The interfaces are read (`if-addrs`) when the listener starts and again on each
//! tick of the host's maintenance (every 5 s by default): an address an interface
//! gains or loses later is reported then.

use crate::dial::classify::{classify_v6, AddrClass};
use multiaddr::{Multiaddr, Protocol};
use std::net::IpAddr;
use tracing::warn;

/// The addresses `bound` stands for: each one whose IP is unspecified becomes one
/// address per interface IP of the same family (link-local IPv6 left out: it needs
/// a zone to be dialed); the others stay as they are.
pub(crate) fn expand(bound: &[Multiaddr]) -> Vec<Multiaddr> {
    if !any_unspecified(bound) {
        return bound.to_vec();
    }
    Interfaces::read().expand(bound)
}

/// The interfaces' IPs as read once, to expand the addresses of several listeners.
pub(crate) struct Interfaces {
    /// `None`: listing them failed (already logged).
    ips: Option<Vec<IpAddr>>,
}

impl Interfaces {
    /// Lists the interfaces' IPs now.
    pub(crate) fn read() -> Self {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => Interfaces {
                ips: Some(interfaces.iter().map(|i| i.ip()).collect()),
            },
            Err(error) => {
                warn!(%error, "listing the network interfaces failed; reporting the unspecified address");
                Interfaces { ips: None }
            }
        }
    }

    /// [`expand`] with these IPs (the bound addresses as they are if listing failed).
    pub(crate) fn expand(&self, bound: &[Multiaddr]) -> Vec<Multiaddr> {
        match &self.ips {
            Some(ips) => expand_with(bound, ips),
            None => bound.to_vec(),
        }
    }
}

/// [`expand`] with the interface IPs given.
fn expand_with(bound: &[Multiaddr], ips: &[IpAddr]) -> Vec<Multiaddr> {
    let mut out = Vec::new();
    for addr in bound {
        let mut parts = addr.iter();
        let first = parts.next();
        let rest: Vec<Protocol<'_>> = parts.collect();
        let wanted_v4 = match first {
            Some(Protocol::Ip4(ip)) if ip.is_unspecified() => true,
            Some(Protocol::Ip6(ip)) if ip.is_unspecified() => false,
            _ => {
                out.push(addr.clone());
                continue;
            }
        };
        let before = out.len();
        for ip in ips {
            let head = match ip {
                IpAddr::V4(v4) if wanted_v4 => Protocol::Ip4(*v4),
                IpAddr::V6(v6) if !wanted_v4 && classify_v6(*v6) != AddrClass::LinkLocal => {
                    Protocol::Ip6(*v6)
                }
                _ => continue,
            };
            let expanded: Multiaddr = std::iter::once(head).chain(rest.iter().cloned()).collect();
            if !out.contains(&expanded) {
                out.push(expanded);
            }
        }
        if out.len() == before {
            // No interface of that family: keep what was bound rather than nothing.
            out.push(addr.clone());
        }
    }
    out
}

/// Whether any of `addrs` has an unspecified IP (`0.0.0.0`, `::`).
pub(crate) fn any_unspecified(addrs: &[Multiaddr]) -> bool {
    addrs.iter().any(is_unspecified)
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn unspecified_addresses_become_one_per_interface_of_their_family() {
        let ips: Vec<IpAddr> = ["127.0.0.1", "192.168.1.7", "::1", "fe80::1", "2001:db8::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let bound = [
            addr("/ip4/0.0.0.0/tcp/4001"),
            addr("/ip6/::/tcp/4002"),
            addr("/ip4/10.0.0.1/tcp/4003"),
        ];
        assert_eq!(
            expand_with(&bound, &ips),
            [
                addr("/ip4/127.0.0.1/tcp/4001"),
                addr("/ip4/192.168.1.7/tcp/4001"),
                addr("/ip6/::1/tcp/4002"),
                addr("/ip6/2001:db8::5/tcp/4002"),
                addr("/ip4/10.0.0.1/tcp/4003"),
            ]
        );
    }

    #[test]
    fn without_an_interface_of_the_family_the_bound_address_stays() {
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let bound = [addr("/ip6/::/tcp/1")];
        assert_eq!(expand_with(&bound, &ips), bound);
    }

    #[test]
    fn this_machine_reports_its_loopback_for_0_0_0_0() {
        let got = expand(&[addr("/ip4/0.0.0.0/tcp/9")]);
        assert!(got.contains(&addr("/ip4/127.0.0.1/tcp/9")), "{got:?}");
        assert!(!got.iter().any(is_unspecified), "{got:?}");
    }
}
