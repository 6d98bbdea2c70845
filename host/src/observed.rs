//! Our own addresses as others see them: identify's observed addresses, confirmed by
//! several distinct observers into a candidate external address, and the external
//! addresses the user accepted (advertised by identify beside the listen addresses).
//!
//! Observations come from peers, so everything here is bounded: the addresses
//! tracked, the observers per address, and how long an observation counts
//! ([`OWN_OBSERVED_ADDR_TTL`], as go-libp2p keeps them). Observers are grouped by
//! network (an IPv4 address, an IPv6 /56), so one host with many peer ids, or one
//! IPv6 customer with many addresses, counts once.

use crate::conn::ConnState;
use crate::dial::classify::{leading_ip, AddrClass, Classifier};
use crate::events::Event;
use crate::host::Inner;
use multiaddr::Multiaddr;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;
use weft_peerstore::OWN_OBSERVED_ADDR_TTL;

/// Observed addresses tracked at once; a new one evicts the least observed.
const MAX_TRACKED: usize = 32;
/// Observer groups remembered per address; a new one evicts the oldest.
const MAX_OBSERVERS: usize = 32;
/// The IPv6 prefix that makes one observer group.
const IPV6_GROUP_PREFIX: u32 = 56;

/// One network observers are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ObserverGroup(IpAddr);

impl ObserverGroup {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => ObserverGroup(ip),
            IpAddr::V6(v6) => {
                let mask = u128::MAX << (128 - IPV6_GROUP_PREFIX);
                ObserverGroup(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
            }
        }
    }
}

#[derive(Debug)]
struct Tracked {
    addr: Multiaddr,
    /// Each observer group with when it last told us.
    observers: Vec<(ObserverGroup, Instant)>,
    /// Whether it was reported as a candidate.
    reported: bool,
}

/// Observed addresses, the candidates they confirmed, and the accepted external
/// addresses.
#[derive(Debug, Default)]
pub(crate) struct OwnAddrs {
    tracked: Vec<Tracked>,
    external: Vec<Multiaddr>,
}

impl OwnAddrs {
    /// The peer at `observer` says it sees us at `observed`. Returns the address with
    /// its number of observer groups when this observation makes it a candidate:
    /// `threshold` distinct groups within the TTL. Only public addresses (as
    /// `classifier` says) can be candidates; one already listened on (`known`) or
    /// accepted is not reported.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        classifier: &Classifier,
        observer: &Multiaddr,
        observed: &Multiaddr,
        threshold: usize,
        known: &[Multiaddr],
    ) -> Option<(Multiaddr, usize)> {
        self.expire(now, OWN_OBSERVED_ADDR_TTL);
        let observer_ip = leading_ip(observer)?;
        if classifier.addr(observed) != AddrClass::Public {
            return None;
        }
        let group = ObserverGroup::of(observer_ip);
        let i = match self.tracked.iter().position(|t| &t.addr == observed) {
            Some(i) => i,
            None => {
                if self.tracked.len() >= MAX_TRACKED {
                    self.evict_least_observed();
                }
                self.tracked.push(Tracked {
                    addr: observed.clone(),
                    observers: Vec::new(),
                    reported: false,
                });
                self.tracked.len() - 1
            }
        };
        let entry = &mut self.tracked[i];
        match entry.observers.iter_mut().find(|(g, _)| *g == group) {
            Some((_, seen)) => *seen = now,
            None => {
                if entry.observers.len() >= MAX_OBSERVERS {
                    entry.observers.remove(0);
                }
                entry.observers.push((group, now));
            }
        }
        let count = entry.observers.len();
        let already = known.contains(observed) || self.external.contains(observed);
        if entry.reported || count < threshold.max(1) || already {
            return None;
        }
        entry.reported = true;
        Some((observed.clone(), count))
    }

    /// Forgets observations older than `ttl`, and addresses left with none.
    fn expire(&mut self, now: Instant, ttl: Duration) {
        for t in &mut self.tracked {
            t.observers
                .retain(|(_, seen)| now.saturating_duration_since(*seen) < ttl);
        }
        self.tracked.retain(|t| !t.observers.is_empty());
    }

    fn evict_least_observed(&mut self) {
        let least = self
            .tracked
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| (t.observers.len(), t.observers.iter().map(|o| o.1).max()))
            .map(|(i, _)| i);
        if let Some(i) = least {
            self.tracked.remove(i);
        }
    }

    /// The observed addresses (public ones, confirmed or not) with an observation
    /// younger than the TTL at `now`, the most observed first.
    #[cfg_attr(not(feature = "dcutr"), allow(dead_code))]
    pub(crate) fn observed(&self, now: Instant) -> Vec<Multiaddr> {
        let mut live: Vec<(usize, &Multiaddr)> = self
            .tracked
            .iter()
            .map(|t| {
                let fresh = t
                    .observers
                    .iter()
                    .filter(|(_, seen)| {
                        now.saturating_duration_since(*seen) < OWN_OBSERVED_ADDR_TTL
                    })
                    .count();
                (fresh, &t.addr)
            })
            .filter(|(fresh, _)| *fresh > 0)
            .collect();
        live.sort_by_key(|(fresh, _)| std::cmp::Reverse(*fresh));
        live.into_iter().map(|(_, a)| a.clone()).collect()
    }

    /// Accepts an external address; false if it was already accepted.
    pub(crate) fn add_external(&mut self, addr: Multiaddr) -> bool {
        if self.external.contains(&addr) {
            return false;
        }
        self.external.push(addr);
        true
    }

    /// Withdraws an external address; false if it was not accepted.
    pub(crate) fn remove_external(&mut self, addr: &Multiaddr) -> bool {
        let before = self.external.len();
        self.external.retain(|a| a != addr);
        before != self.external.len()
    }

    /// The accepted external addresses, in the order they were accepted.
    pub(crate) fn external(&self) -> &[Multiaddr] {
        &self.external
    }
}

impl Inner {
    /// The peer of `conn` says it sees us at `observed`: count it, and report a
    /// candidate external address when enough observers agree.
    pub(crate) fn on_observed(&self, conn: &ConnState, observed: &Multiaddr) {
        let known = self.listen_addrs();
        let candidate = self.lock().own_addrs.observe(
            Instant::now(),
            &self.dialer.config.classifier,
            &conn.remote_addr,
            observed,
            self.config.observed_addr_threshold,
            &known,
        );
        if let Some((addr, observers)) = candidate {
            info!(%addr, observers, "candidate external address");
            self.emit(Event::ExternalAddrCandidate { addr, observers });
        }
    }

    /// What identify advertises: the listen addresses, then the accepted external
    /// ones.
    pub(crate) fn advertised_addrs(&self) -> Vec<Multiaddr> {
        let mut addrs = self.listen_addrs();
        for a in self.lock().own_addrs.external() {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        addrs
    }

    /// Accepts an external address, and tells connected peers (identify push) when
    /// it is new.
    pub(crate) fn add_external_addr(self: &Arc<Self>, addr: Multiaddr) -> bool {
        let added = self.lock().own_addrs.add_external(addr);
        if added {
            self.push_identify_to_all();
        }
        added
    }

    /// Withdraws an external address, and tells connected peers when it was there.
    pub(crate) fn remove_external_addr(self: &Arc<Self>, addr: &Multiaddr) -> bool {
        let removed = self.lock().own_addrs.remove_external(addr);
        if removed {
            self.push_identify_to_all();
        }
        removed
    }

    /// The accepted external addresses.
    pub(crate) fn external_addrs(&self) -> Vec<Multiaddr> {
        self.lock().own_addrs.external().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    const US: &str = "/ip4/8.8.8.8/tcp/4001";

    #[test]
    fn an_address_becomes_a_candidate_at_the_threshold_of_distinct_observers_once() {
        let c = Classifier::new();
        let mut own = OwnAddrs::default();
        let t = Instant::now();
        let us = a(US);
        for (i, observer) in ["1.1.1.1", "2.2.2.2", "3.3.3.3"].iter().enumerate() {
            let from = a(&format!("/ip4/{observer}/tcp/1"));
            assert_eq!(own.observe(t, &c, &from, &us, 4, &[]), None, "observer {i}");
            // The same observer again (another peer id on that host) adds nothing.
            assert_eq!(own.observe(t, &c, &from, &us, 4, &[]), None);
        }
        let fourth = a("/ip4/4.4.4.4/tcp/1");
        assert_eq!(
            own.observe(t, &c, &fourth, &us, 4, &[]),
            Some((us.clone(), 4))
        );
        let fifth = a("/ip4/5.5.5.5/tcp/1");
        assert_eq!(
            own.observe(t, &c, &fifth, &us, 4, &[]),
            None,
            "reported once"
        );
    }

    #[test]
    fn ipv6_observers_of_one_56_count_once() {
        let c = Classifier::new();
        let mut own = OwnAddrs::default();
        let t = Instant::now();
        let us = a(US);
        for host in [
            "2001:4860:0:aa00::1",
            "2001:4860:0:aa11::2",
            "2001:4860:0:aaff::3",
        ] {
            let from = a(&format!("/ip6/{host}/tcp/1"));
            assert_eq!(own.observe(t, &c, &from, &us, 2, &[]), None, "{host}");
        }
        let elsewhere = a("/ip6/2001:4860:0:bb00::1/tcp/1");
        assert_eq!(own.observe(t, &c, &elsewhere, &us, 2, &[]), Some((us, 2)));
    }

    #[test]
    fn private_known_and_accepted_addresses_are_no_candidates() {
        let c = Classifier::new();
        let mut own = OwnAddrs::default();
        let t = Instant::now();
        let from = a("/ip4/1.1.1.1/tcp/1");
        let private = a("/ip4/192.168.0.2/tcp/4001");
        assert_eq!(own.observe(t, &c, &from, &private, 1, &[]), None);
        let us = a(US);
        assert_eq!(
            own.observe(t, &c, &from, &us, 1, std::slice::from_ref(&us)),
            None,
            "listened on"
        );
        assert!(own.add_external(a("/ip4/9.9.9.9/tcp/4001")));
        assert!(!own.add_external(a("/ip4/9.9.9.9/tcp/4001")));
        assert_eq!(
            own.observe(t, &c, &from, &a("/ip4/9.9.9.9/tcp/4001"), 1, &[]),
            None
        );
        assert_eq!(own.external(), [a("/ip4/9.9.9.9/tcp/4001")]);
        assert!(own.remove_external(&a("/ip4/9.9.9.9/tcp/4001")));
        assert!(own.external().is_empty());
        // A test network's documentation range taken as the internet.
        let lab = Classifier::new().with_public(&[AddrClass::Documentation]);
        let doc = a("/ip4/203.0.113.7/tcp/4001");
        assert_eq!(own.observe(t, &lab, &from, &doc, 1, &[]), Some((doc, 1)));
    }

    #[test]
    fn observed_addresses_count_before_confirmation_most_observed_first() {
        let c = Classifier::new();
        let mut own = OwnAddrs::default();
        let t = Instant::now();
        let (one, two) = (a("/ip4/8.8.8.8/tcp/1"), a("/ip4/8.8.8.8/tcp/2"));
        own.observe(t, &c, &a("/ip4/1.1.1.1/tcp/1"), &one, 4, &[]);
        own.observe(t, &c, &a("/ip4/1.1.1.1/tcp/1"), &two, 4, &[]);
        own.observe(t, &c, &a("/ip4/2.2.2.2/tcp/1"), &two, 4, &[]);
        own.observe(
            t,
            &c,
            &a("/ip4/2.2.2.2/tcp/1"),
            &a("/ip4/10.0.0.1/tcp/1"),
            4,
            &[],
        );
        assert_eq!(
            own.observed(t),
            vec![two, one],
            "private ones are never tracked"
        );
        assert!(own.observed(t + OWN_OBSERVED_ADDR_TTL).is_empty());
    }

    #[test]
    fn observations_expire_and_tracking_is_bounded() {
        let c = Classifier::new();
        let mut own = OwnAddrs::default();
        let t = Instant::now();
        let us = a(US);
        for i in 1..=3u8 {
            let from = a(&format!("/ip4/1.1.1.{i}/tcp/1"));
            assert_eq!(own.observe(t, &c, &from, &us, 4, &[]), None);
        }
        // After the TTL the first three no longer count.
        let later = t + OWN_OBSERVED_ADDR_TTL + Duration::from_secs(1);
        let from = a("/ip4/1.1.1.4/tcp/1");
        assert_eq!(own.observe(later, &c, &from, &us, 4, &[]), None);
        assert_eq!(own.tracked[0].observers.len(), 1);
        // A flood of distinct observed addresses keeps at most MAX_TRACKED.
        for port in 0..200u16 {
            let claimed = a(&format!("/ip4/8.8.8.8/tcp/{port}"));
            own.observe(later, &c, &from, &claimed, 4, &[]);
        }
        assert_eq!(own.tracked.len(), MAX_TRACKED);
        // Observers per address are bounded too.
        for i in 0..=255u8 {
            let from = a(&format!("/ip4/7.7.{i}.1/tcp/1"));
            own.observe(later, &c, &from, &us, 1000, &[]);
        }
        let entry = own.tracked.iter().find(|t| t.addr == us).unwrap();
        assert_eq!(entry.observers.len(), MAX_OBSERVERS);
    }
}
