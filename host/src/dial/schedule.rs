//! When each address attempt of one dial starts: a pure state machine fed with
//! addresses, resolution results, attempt failures and the time, answering "start
//! this attempt now", "wake me at T", "wait for an attempt or a resolution" or
//! "nothing is left".
//!
//! It follows RFC 8305 (Happy Eyeballs v2): attempts start one at a time in the
//! [`Ranker`]'s order, each a connection-attempt delay after the one before, except
//! that a failure starts the next attempt at once. Earlier attempts keep running:
//! the first to connect wins. Addresses that arrive later (a `/dns*` or `/dnsaddr`
//! name resolved while attempts run) are ranked in among the ones not yet started.
//! Addresses in their backoff are skipped, unless the dial ignores backoff.

use super::backoff::DialBackoff;
use super::rank::{Ranker, Rejection};
use crate::transport::split_peer_id;
use multiaddr::Multiaddr;
use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

/// What the driver of a [`Schedule`] does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start an attempt on this address now.
    Start(Multiaddr),
    /// Nothing to start before this instant (unless an attempt fails first).
    WakeAt(Instant),
    /// Nothing to start: wait for an attempt or a resolution to end.
    Wait,
    /// Every address was tried and no attempt or resolution is left.
    Exhausted,
}

/// Why an address was skipped without an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The ranker left it out.
    Rejected(Rejection),
    /// It failed recently: backed off for this much longer.
    BackedOff(Duration),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Rejected(r) => r.fmt(f),
            Skip::BackedOff(d) => write!(f, "backed off for another {d:?}"),
        }
    }
}

/// The attempts of one dial.
#[derive(Debug)]
pub struct Schedule {
    ranker: Ranker,
    delay: Duration,
    ignore_backoff: bool,
    pending: Vec<Multiaddr>,
    seen: HashSet<Multiaddr>,
    in_flight: Vec<Multiaddr>,
    resolving: Vec<Multiaddr>,
    next_at: Instant,
}

impl Schedule {
    /// A schedule starting at `now`, attempts `delay` apart (RFC 8305's connection
    /// attempt delay; 250 ms by default in the host).
    pub fn new(ranker: Ranker, delay: Duration, now: Instant) -> Self {
        Schedule {
            ranker,
            delay,
            ignore_backoff: false,
            pending: Vec::new(),
            seen: HashSet::new(),
            in_flight: Vec::new(),
            resolving: Vec::new(),
            next_at: now,
        }
    }

    /// Tries addresses in their backoff too.
    pub fn with_ignore_backoff(mut self, ignore: bool) -> Self {
        self.ignore_backoff = ignore;
        self
    }

    /// The ranker in use.
    pub fn ranker(&self) -> &Ranker {
        &self.ranker
    }

    /// Adds addresses to try; returns the ones skipped, and why. An address seen
    /// before in this dial is ignored.
    pub fn add(
        &mut self,
        addrs: &[Multiaddr],
        backoff: &DialBackoff,
        now: Instant,
    ) -> Vec<(Multiaddr, Skip)> {
        let fresh: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| self.seen.insert((*a).clone()))
            .cloned()
            .collect();
        let ranking = self.ranker.rank(&fresh);
        let mut skipped: Vec<(Multiaddr, Skip)> = ranking
            .rejected
            .into_iter()
            .map(|(a, r)| (a, Skip::Rejected(r)))
            .collect();
        let mut all = std::mem::take(&mut self.pending);
        for addr in ranking.ranked {
            let left = backoff.addrs.remaining(&split_peer_id(&addr).0, now);
            match left {
                Some(left) if !self.ignore_backoff => skipped.push((addr, Skip::BackedOff(left))),
                _ => all.push(addr),
            }
        }
        self.pending = self.ranker.rank(&all).ranked;
        skipped
    }

    /// A name (`/dns*`, `/dnsaddr`) is being resolved: the dial is not over before
    /// [`resolved`](Self::resolved) is called for it.
    pub fn resolving(&mut self, name: Multiaddr) {
        self.seen.insert(name.clone());
        self.resolving.push(name);
    }

    /// A name resolved to `addrs` (empty when it failed); returns what was skipped.
    pub fn resolved(
        &mut self,
        name: &Multiaddr,
        addrs: &[Multiaddr],
        backoff: &DialBackoff,
        now: Instant,
    ) -> Vec<(Multiaddr, Skip)> {
        if let Some(i) = self.resolving.iter().position(|n| n == name) {
            self.resolving.swap_remove(i);
        }
        self.add(addrs, backoff, now)
    }

    /// The attempt on `addr` failed at `now`: the next attempt may start at once.
    /// The address's backoff grows (`unit`: a random draw in `[0, 1)`).
    pub fn failed(&mut self, addr: &Multiaddr, backoff: &mut DialBackoff, now: Instant, unit: f64) {
        if let Some(i) = self.in_flight.iter().position(|a| a == addr) {
            self.in_flight.swap_remove(i);
            self.next_at = self.next_at.min(now);
        }
        backoff.addrs.failed(&split_peer_id(addr).0, now, unit);
    }

    /// The attempt on `addr` failed for a reason that says nothing about the
    /// address (a local limit): the next attempt may start at once, no backoff.
    pub fn abandoned(&mut self, addr: &Multiaddr, now: Instant) {
        if let Some(i) = self.in_flight.iter().position(|a| a == addr) {
            self.in_flight.swap_remove(i);
            self.next_at = self.next_at.min(now);
        }
    }

    /// The attempt on `addr` connected: its backoff is forgotten.
    pub fn succeeded(&mut self, addr: &Multiaddr, backoff: &mut DialBackoff) {
        self.in_flight.retain(|a| a != addr);
        backoff.addrs.succeeded(&split_peer_id(addr).0);
    }

    /// What to do at `now`. Call again after each [`Step::Start`].
    pub fn poll(&mut self, now: Instant) -> Step {
        if !self.pending.is_empty() {
            if now >= self.next_at {
                let addr = self.pending.remove(0);
                self.in_flight.push(addr.clone());
                self.next_at = now + self.delay;
                return Step::Start(addr);
            }
            return Step::WakeAt(self.next_at);
        }
        if self.in_flight.is_empty() && self.resolving.is_empty() {
            Step::Exhausted
        } else {
            Step::Wait
        }
    }

    /// Attempts running.
    pub fn in_flight(&self) -> &[Multiaddr] {
        &self.in_flight
    }

    /// Addresses not yet started, in the order they will be.
    pub fn pending(&self) -> &[Multiaddr] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::super::backoff::BackoffConfig;
    use super::super::rank::{transport_kind, DialableFn, TransportKind};
    use super::*;
    use libp2p_identity::PeerId;
    use multiaddr::Protocol;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// What the table records at each instant.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Act {
        /// Left out before any attempt: no transport / unusable / another peer.
        NoTransport,
        Unusable,
        WrongPeer,
        /// Skipped: in its backoff.
        BackedOff,
        /// A name handed to the resolver, and its answer.
        Resolving,
        Resolved,
        Start,
        Fail,
        Connected,
        /// The whole dial failed / was refused: the peer is in its backoff.
        DialFailed,
        PeerBackedOff,
    }

    /// How an attempt on an address ends, after how many ms (`None`: never).
    #[derive(Clone, Copy)]
    enum Outcome {
        Fail(u64),
        Connect(u64),
        Hang,
    }

    // The peer dialed in the table. Its id only shows in `/p2p/` suffixes, as `P`;
    // `Q` is another peer.
    const PEER: &str = "P";

    /// The 12 addresses of the peer, each with its outcome.
    const ADDRS: &[(&str, Outcome)] = &[
        ("/ip4/1.0.0.1/tcp/4001", Outcome::Connect(900)), // slow, wins
        ("/ip6/2606:4700::1/tcp/4001", Outcome::Fail(30)), // refused
        ("/ip4/1.0.0.2/tcp/4001", Outcome::Hang),         // a black hole
        ("/ip6/2606:4700::2/tcp/4001", Outcome::Fail(100)),
        ("/ip4/1.0.0.1/udp/4001/quic-v1", Outcome::Connect(1)), // no QUIC transport
        ("/ip4/1.0.0.1/udp/4001/webrtc-direct", Outcome::Connect(1)),
        (
            "/ip6/2606:4700::1/udp/4001/quic-v1/webtransport",
            Outcome::Connect(1),
        ),
        ("/ip4/192.168.1.10/tcp/4001", Outcome::Fail(5)), // its LAN, not ours
        ("/ip4/127.0.0.1/tcp/4001", Outcome::Fail(1)),
        ("/dnsaddr/bootstrap.example.com", Outcome::Hang), // resolved below
        ("/ip4/0.0.0.0/tcp/4001", Outcome::Connect(1)),
        ("/ip4/1.0.0.5/tcp/4001", Outcome::Connect(1)), // failed 200 ms ago
    ];

    /// What `/dnsaddr/bootstrap.example.com` resolves to, 100 ms in.
    const RESOLVE_AT_MS: u64 = 100;
    const RESOLVED: &[(&str, Outcome)] = &[
        ("/ip4/1.0.0.3/tcp/4001/p2p/P", Outcome::Hang),
        ("/ip6/2606:4700::4/tcp/4001/p2p/P", Outcome::Fail(10)),
        ("/ip4/1.0.0.9/tcp/4001/p2p/Q", Outcome::Connect(1)),
    ];

    /// The expected schedule: (ms since the dial started, address, what happened).
    /// Attempts are 250 ms apart unless a failure starts the next one at once.
    const SCHEDULE: &[(u64, &str, Act)] = &[
        // Out before any delay.
        (0, "/ip4/1.0.0.1/udp/4001/quic-v1", Act::NoTransport),
        (0, "/ip4/1.0.0.1/udp/4001/webrtc-direct", Act::NoTransport),
        (
            0,
            "/ip6/2606:4700::1/udp/4001/quic-v1/webtransport",
            Act::NoTransport,
        ),
        (0, "/ip4/0.0.0.0/tcp/4001", Act::Unusable),
        (0, "/ip4/1.0.0.5/tcp/4001", Act::BackedOff),
        (0, "/dnsaddr/bootstrap.example.com", Act::Resolving),
        // IPv6 first, then IPv4 (Happy Eyeballs).
        (0, "/ip6/2606:4700::1/tcp/4001", Act::Start),
        (30, "/ip6/2606:4700::1/tcp/4001", Act::Fail),
        // The failure starts the next at once, not at 250.
        (30, "/ip4/1.0.0.1/tcp/4001", Act::Start),
        // The resolved addresses are ranked in among the pending ones.
        (100, "/dnsaddr/bootstrap.example.com", Act::Resolved),
        (100, "/ip4/1.0.0.9/tcp/4001/p2p/Q", Act::WrongPeer),
        (280, "/ip6/2606:4700::2/tcp/4001", Act::Start),
        (380, "/ip6/2606:4700::2/tcp/4001", Act::Fail),
        (380, "/ip4/1.0.0.2/tcp/4001", Act::Start),
        (630, "/ip6/2606:4700::4/tcp/4001/p2p/P", Act::Start),
        (640, "/ip6/2606:4700::4/tcp/4001/p2p/P", Act::Fail),
        (640, "/ip4/1.0.0.3/tcp/4001/p2p/P", Act::Start),
        // The peer is not local: its private and loopback addresses come last.
        (890, "/ip4/192.168.1.10/tcp/4001", Act::Start),
        (895, "/ip4/192.168.1.10/tcp/4001", Act::Fail),
        (895, "/ip4/127.0.0.1/tcp/4001", Act::Start),
        (896, "/ip4/127.0.0.1/tcp/4001", Act::Fail),
        (930, "/ip4/1.0.0.1/tcp/4001", Act::Connected),
        // A second dial, 2 s in, of two addresses that both fail: the peer is backed
        // off for 1 s (the draw is 0.5: no jitter).
        (2000, "/ip4/1.0.0.7/tcp/4001", Act::Start),
        (2020, "/ip4/1.0.0.7/tcp/4001", Act::Fail),
        (2020, "/ip4/1.0.0.8/tcp/4001", Act::Start),
        (2040, "/ip4/1.0.0.8/tcp/4001", Act::Fail),
        (2040, "", Act::DialFailed),
        // A dial 500 ms later is refused at once. One when the peer's backoff is over
        // (3040) runs, but skips 1.0.0.8: it had failed before (at 900), so its
        // failure at 2040 was its second in a row, backed off 2 s (to 4040). 1.0.0.7's
        // 1 s (from 2020) is over.
        (2540, "", Act::PeerBackedOff),
        (3040, "/ip4/1.0.0.8/tcp/4001", Act::BackedOff),
        (3040, "/ip4/1.0.0.7/tcp/4001", Act::Start),
        (3040, "/ip4/1.0.0.7/tcp/4001", Act::Connected),
    ];

    fn tcp_only() -> DialableFn {
        Arc::new(|a: &Multiaddr| {
            transport_kind(a) == TransportKind::Tcp
                && matches!(a.iter().next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)))
        })
    }

    /// Replaces the `P` and `Q` placeholders with real peer ids, and back.
    struct Names {
        p: PeerId,
        q: PeerId,
    }

    impl Names {
        fn addr(&self, s: &str) -> Multiaddr {
            let s = s
                .replace("/p2p/P", &format!("/p2p/{}", self.p))
                .replace("/p2p/Q", &format!("/p2p/{}", self.q));
            s.parse().unwrap()
        }
        fn show(&self, a: &Multiaddr) -> String {
            a.to_string()
                .replace(&self.p.to_string(), PEER)
                .replace(&self.q.to_string(), "Q")
        }
    }

    /// Runs one dial against scripted outcomes on a simulated clock; returns when
    /// it connected (`true`) or ran out of addresses.
    #[allow(clippy::too_many_arguments)]
    fn simulate(
        names: &Names,
        schedule: &mut Schedule,
        backoff: &mut DialBackoff,
        t0: Instant,
        start_ms: u64,
        outcomes: &BTreeMap<String, Outcome>,
        resolution: Option<(u64, &str, Vec<Multiaddr>)>,
        log: &mut Vec<(u64, String, Act)>,
    ) -> bool {
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut now_ms = start_ms;
        // (end ms, address, connects)
        let mut running: Vec<(u64, Multiaddr, bool)> = Vec::new();
        let mut resolution = resolution;
        loop {
            let mut wake = None;
            loop {
                match schedule.poll(at(now_ms)) {
                    Step::Start(a) => {
                        log.push((now_ms, names.show(&a), Act::Start));
                        match outcomes[&names.show(&a)] {
                            Outcome::Fail(d) => running.push((now_ms + d, a, false)),
                            Outcome::Connect(d) => running.push((now_ms + d, a, true)),
                            Outcome::Hang => {}
                        }
                    }
                    Step::WakeAt(t) => {
                        wake = Some(t.duration_since(t0).as_millis() as u64);
                        break;
                    }
                    Step::Wait => break,
                    Step::Exhausted => return false,
                }
            }
            let next_end = running.iter().map(|r| r.0).min();
            let next_resolve = resolution.as_ref().map(|r| r.0);
            let next = [wake, next_end, next_resolve].into_iter().flatten().min();
            let Some(next) = next else {
                panic!("the schedule waits for nothing at {now_ms} ms")
            };
            now_ms = next;
            if next_resolve == Some(now_ms) {
                if let Some((_, name, addrs)) = resolution.take() {
                    log.push((now_ms, name.to_string(), Act::Resolved));
                    let name: Multiaddr = name.parse().unwrap();
                    for (a, why) in schedule.resolved(&name, &addrs, backoff, at(now_ms)) {
                        log.push((now_ms, names.show(&a), act_of(&why)));
                    }
                }
            }
            while let Some(i) = running.iter().position(|r| r.0 == now_ms) {
                let (_, addr, connects) = running.remove(i);
                if connects {
                    schedule.succeeded(&addr, backoff);
                    log.push((now_ms, names.show(&addr), Act::Connected));
                    return true;
                }
                schedule.failed(&addr, backoff, at(now_ms), 0.5);
                log.push((now_ms, names.show(&addr), Act::Fail));
            }
        }
    }

    fn act_of(skip: &Skip) -> Act {
        match skip {
            Skip::Rejected(Rejection::NoTransport) => Act::NoTransport,
            Skip::Rejected(Rejection::Unusable) => Act::Unusable,
            Skip::Rejected(Rejection::WrongPeer(_)) => Act::WrongPeer,
            Skip::BackedOff(_) => Act::BackedOff,
        }
    }

    #[test]
    fn twelve_addresses_follow_the_expected_schedule() {
        let names = Names {
            p: PeerId::random(),
            q: PeerId::random(),
        };
        let t0 = Instant::now() + Duration::from_secs(1);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let delay = Duration::from_millis(250);
        let mut backoff = DialBackoff::new(BackoffConfig::default());
        // 1.0.0.5 failed 200 ms before the dial: 800 ms of its backoff are left.
        backoff.addrs.failed(
            &"/ip4/1.0.0.5/tcp/4001".parse().unwrap(),
            t0 - Duration::from_millis(200),
            0.5,
        );
        let mut outcomes: BTreeMap<String, Outcome> = ADDRS
            .iter()
            .chain(RESOLVED)
            .map(|(a, o)| (a.to_string(), *o))
            .collect();
        outcomes.insert("/ip4/1.0.0.7/tcp/4001".into(), Outcome::Fail(20));
        outcomes.insert("/ip4/1.0.0.8/tcp/4001".into(), Outcome::Fail(20));
        let ranker = |peer| Ranker::new(tcp_only()).with_peer(Some(peer));
        let mut log = Vec::new();

        // The first dial: the names go to the resolver, the rest to the schedule.
        let mut schedule = Schedule::new(ranker(names.p), delay, at(0));
        let (dns, direct): (Vec<&str>, Vec<&str>) = ADDRS
            .iter()
            .map(|(a, _)| *a)
            .partition(|a| a.starts_with("/dns"));
        let direct: Vec<Multiaddr> = direct.iter().map(|a| names.addr(a)).collect();
        for (a, why) in schedule.add(&direct, &backoff, at(0)) {
            log.push((0, names.show(&a), act_of(&why)));
        }
        for name in &dns {
            schedule.resolving(name.parse().unwrap());
            log.push((0, name.to_string(), Act::Resolving));
        }
        let resolved: Vec<Multiaddr> = RESOLVED.iter().map(|(a, _)| names.addr(a)).collect();
        let connected = simulate(
            &names,
            &mut schedule,
            &mut backoff,
            t0,
            0,
            &outcomes,
            Some((RESOLVE_AT_MS, dns[0], resolved)),
            &mut log,
        );
        assert!(connected);
        backoff.peers.succeeded(&names.p);
        // The hanging attempts are dropped with the dial; the winner has no backoff.
        assert_eq!(
            backoff
                .addrs
                .remaining(&names.addr("/ip4/1.0.0.1/tcp/4001"), at(930)),
            None
        );
        assert!(backoff
            .addrs
            .remaining(&names.addr("/ip6/2606:4700::1/tcp/4001"), at(930))
            .is_some());

        // The second dial: everything fails, the peer backs off. 1.0.0.8 had
        // failed once before, at 900 (its backoff over by 2000).
        backoff
            .addrs
            .failed(&names.addr("/ip4/1.0.0.8/tcp/4001"), at(900), 0.5);
        let second = ["/ip4/1.0.0.7/tcp/4001", "/ip4/1.0.0.8/tcp/4001"].map(|a| names.addr(a));
        let mut schedule = Schedule::new(ranker(names.p), delay, at(2000));
        assert!(schedule.add(&second, &backoff, at(2000)).is_empty());
        let connected = simulate(
            &names,
            &mut schedule,
            &mut backoff,
            t0,
            2000,
            &outcomes,
            None,
            &mut log,
        );
        assert!(!connected);
        let peer_backoff = backoff.peers.failed(&names.p, at(2040), 0.5);
        assert_eq!(peer_backoff, Duration::from_secs(1));
        log.push((2040, String::new(), Act::DialFailed));

        // 500 ms later: refused, with the time left.
        assert_eq!(
            backoff.peers.remaining(&names.p, at(2540)),
            Some(Duration::from_millis(500))
        );
        log.push((2540, String::new(), Act::PeerBackedOff));

        // After the peer's backoff: 1.0.0.7's own backoff is over, 1.0.0.8's is not.
        assert_eq!(
            backoff.peers.remaining(&names.p, at(3039)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(backoff.peers.remaining(&names.p, at(3040)), None);
        outcomes.insert("/ip4/1.0.0.7/tcp/4001".into(), Outcome::Connect(0));
        let mut schedule = Schedule::new(ranker(names.p), delay, at(3040));
        let skipped = schedule.add(&second, &backoff, at(3040));
        for (a, why) in &skipped {
            assert_eq!(*why, Skip::BackedOff(Duration::from_millis(1000)));
            log.push((3040, names.show(a), act_of(why)));
        }
        let connected = simulate(
            &names,
            &mut schedule,
            &mut backoff,
            t0,
            3040,
            &outcomes,
            None,
            &mut log,
        );
        assert!(connected);

        let expected: Vec<(u64, String, Act)> = SCHEDULE
            .iter()
            .map(|(ms, a, act)| (*ms, a.to_string(), *act))
            .collect();
        for (i, (got, want)) in log.iter().zip(&expected).enumerate() {
            assert_eq!(
                got, want,
                "row {i}: got {got:?}, expected {want:?}\nfull log: {log:#?}"
            );
        }
        assert_eq!(log.len(), expected.len(), "full log: {log:#?}");
    }

    #[test]
    fn forced_dials_ignore_backoff_and_late_addresses_start_at_once() {
        let t0 = Instant::now();
        let mut backoff = DialBackoff::new(BackoffConfig::default());
        let a: Multiaddr = "/ip4/1.0.0.1/tcp/1".parse().unwrap();
        backoff.addrs.failed(&a, t0, 0.5);
        let mut s = Schedule::new(Ranker::new(tcp_only()), Duration::from_millis(250), t0)
            .with_ignore_backoff(true);
        assert!(s.add(std::slice::from_ref(&a), &backoff, t0).is_empty());
        assert_eq!(s.poll(t0), Step::Start(a.clone()));
        assert_eq!(s.poll(t0), Step::Wait);
        // A name resolved while the only attempt runs, after the delay: starts at once.
        let name: Multiaddr = "/dns4/example.com/tcp/1".parse().unwrap();
        s.resolving(name.clone());
        let late = t0 + Duration::from_millis(600);
        let b: Multiaddr = "/ip4/1.0.0.2/tcp/1".parse().unwrap();
        assert!(s
            .resolved(&name, std::slice::from_ref(&b), &backoff, late)
            .is_empty());
        assert_eq!(s.poll(late), Step::Start(b.clone()));
        // Another name, nothing left to start, one attempt running.
        s.resolving(name.clone());
        s.failed(&a, &mut backoff, late, 0.5);
        assert_eq!(s.poll(late), Step::Wait);
        s.abandoned(&b, late);
        assert_eq!(s.poll(late), Step::Wait, "the name is still resolving");
        assert!(s.resolved(&name, &[], &backoff, late).is_empty());
        assert_eq!(s.poll(late), Step::Exhausted);
        // The same address again is not tried twice.
        assert!(s.add(std::slice::from_ref(&a), &backoff, late).is_empty());
        assert_eq!(s.poll(late), Step::Exhausted);
    }
}
