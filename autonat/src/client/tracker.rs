//! The client's bookkeeping, apart from any I/O: the addresses to test, the recent
//! results of each from distinct servers, the confidence rule, and when to probe
//! what with whom.
//!
//! Time is passed in (`now`), so tests drive it by hand. The rule: each address
//! keeps the latest result of at most `window` distinct servers; it is
//! [`Reachable`](Reachability::Reachable) when dial-backs outnumber failures by
//! `target_confidence`, [`Unreachable`](Reachability::Unreachable) the other way
//! round, and [`Unknown`](Reachability::Unknown) otherwise. One server never counts
//! twice, so a verdict needs at least `target_confidence` servers. A confirmed
//! address is probed again after `reprobe_interval`, and every address as soon as
//! the set of addresses changes (the network may have changed under us); a fresh
//! result replaces the same server's older one, so a verdict flips once enough
//! servers see the change. Non-public addresses are never probed and never
//! confirmed. Several probes run at once (`max_in_flight`), but never two of one
//! address with one server, at most `max_in_flight_per_server` with one server (the
//! servers' own per-peer limit, go-libp2p's and weft's 2) and at most
//! `target_confidence` of one address: an unreachable address costs a server its
//! whole dial-back timeout, so asking three servers at once gives a verdict in one
//! timeout instead of three.

use super::verdict::{Reachability, Reason, Verdict};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The client's confidence rule and schedule.
///
/// The defaults: a margin of 3 agreeing servers (go-libp2p's `targetConfidence`)
/// among the latest results of 5; re-probes every hour; a server that failed a
/// probe is left alone for 10 minutes; at most 32 addresses tracked; at most 6
/// probes at once, 2 with one server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackerConfig {
    /// The margin of agreeing servers a verdict needs (at least 1).
    pub target_confidence: usize,
    /// Results kept per address (distinct servers), at least `target_confidence`.
    pub window: usize,
    /// How long a result counts as fresh: a confirmed address is re-probed after it.
    pub reprobe_interval: Duration,
    /// How long a server that failed a probe of an address is not asked about it
    /// again.
    pub server_backoff: Duration,
    /// Addresses tracked at once (the first ones given win).
    pub max_addrs: usize,
    /// Probes running at once, all servers together (at least 1).
    pub max_in_flight: usize,
    /// Probes running at once with one server (at least 1).
    pub max_in_flight_per_server: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            target_confidence: 3,
            window: 5,
            reprobe_interval: Duration::from_secs(60 * 60),
            server_backoff: Duration::from_secs(10 * 60),
            max_addrs: 32,
            max_in_flight: 6,
            max_in_flight_per_server: 2,
        }
    }
}

impl TrackerConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The margin of agreeing servers, and the results kept per address (raised to
    /// the margin if below it).
    pub fn with_confidence(mut self, target: usize, window: usize) -> Self {
        self.target_confidence = target.max(1);
        self.window = window.max(self.target_confidence);
        self
    }

    /// How long a result stays fresh.
    pub fn with_reprobe_interval(mut self, interval: Duration) -> Self {
        self.reprobe_interval = interval;
        self
    }

    /// How long a failing server is left alone.
    pub fn with_server_backoff(mut self, backoff: Duration) -> Self {
        self.server_backoff = backoff;
        self
    }

    /// Addresses tracked at once.
    pub fn with_max_addrs(mut self, max: usize) -> Self {
        self.max_addrs = max;
        self
    }

    /// Probes running at once, in total and with one server (each at least 1).
    pub fn with_max_in_flight(mut self, total: usize, per_server: usize) -> Self {
        self.max_in_flight = total.max(1);
        self.max_in_flight_per_server = per_server.max(1);
        self
    }
}

/// What a probe found out about its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// The server dialed it and our nonce came back.
    Reachable,
    /// The server could not connect to it.
    Unreachable,
}

/// A probe to run: ask `server` about `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The address.
    pub addr: Multiaddr,
    /// The server.
    pub server: PeerId,
}

/// A verdict that changed (or an address seen for the first time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The address.
    pub addr: Multiaddr,
    /// Its verdict now.
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    server: PeerId,
    evidence: Evidence,
    at: Instant,
}

#[derive(Debug)]
struct Entry {
    addr: Multiaddr,
    public: bool,
    samples: VecDeque<Sample>,
    verdict: Verdict,
    /// Samples taken before this are stale (the addresses changed).
    stale_before: Option<Instant>,
}

/// The addresses under test and their verdicts.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    entries: Vec<Entry>,
    /// Servers left alone for one address after a failed probe of it.
    backoff: HashMap<(PeerId, Multiaddr), Instant>,
    in_flight: Vec<Probe>,
}

impl Tracker {
    /// No addresses yet.
    pub fn new(config: TrackerConfig) -> Self {
        let config = TrackerConfig {
            target_confidence: config.target_confidence.max(1),
            window: config.window.max(config.target_confidence.max(1)),
            max_in_flight: config.max_in_flight.max(1),
            max_in_flight_per_server: config.max_in_flight_per_server.max(1),
            ..config
        };
        Tracker {
            config,
            entries: Vec::new(),
            backoff: HashMap::new(),
            in_flight: Vec::new(),
        }
    }

    /// The rule in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Every tracked address with its verdict, in the order given.
    pub fn verdicts(&self) -> Vec<(Multiaddr, Verdict)> {
        self.entries
            .iter()
            .map(|e| (e.addr.clone(), e.verdict))
            .collect()
    }

    /// The verdict on one address, if it is tracked.
    pub fn verdict(&self, addr: &Multiaddr) -> Option<Verdict> {
        self.entries
            .iter()
            .find(|e| &e.addr == addr)
            .map(|e| e.verdict)
    }

    /// The probes in progress, oldest first.
    pub fn in_flight(&self) -> &[Probe] {
        &self.in_flight
    }

    /// Sets the addresses to test, each with whether it is public. New addresses
    /// are reported (non-public ones as [`Reason::NotPublic`], at once); addresses
    /// no longer given are forgotten. When the set changed, every result so far is
    /// stale: all addresses are probed again (their verdicts stand until new results
    /// overturn them).
    pub fn set_addrs(
        &mut self,
        addrs: impl IntoIterator<Item = (Multiaddr, bool)>,
        now: Instant,
    ) -> Vec<Change> {
        let mut wanted: Vec<(Multiaddr, bool)> = Vec::new();
        for (addr, public) in addrs {
            if wanted.len() >= self.config.max_addrs {
                break;
            }
            if !wanted.iter().any(|(a, _)| *a == addr) {
                wanted.push((addr, public));
            }
        }
        let before = self.entries.len();
        self.entries
            .retain(|e| wanted.iter().any(|(a, _)| *a == e.addr));
        let mut changed = self.entries.len() != before;
        let mut changes = Vec::new();
        let needed = self.config.target_confidence;
        for (addr, public) in wanted {
            if self.entries.iter().any(|e| e.addr == addr) {
                continue;
            }
            changed = true;
            let reason = if public {
                Reason::Probing
            } else {
                Reason::NotPublic
            };
            let verdict = Verdict::unknown(reason, needed);
            changes.push(Change {
                addr: addr.clone(),
                verdict,
            });
            self.entries.push(Entry {
                addr,
                public,
                samples: VecDeque::new(),
                verdict,
                stale_before: None,
            });
        }
        if changed {
            self.reprobe_all(now);
        }
        changes
    }

    /// Takes every result so far as stale, so every public address is probed again.
    pub fn reprobe_all(&mut self, now: Instant) {
        for e in &mut self.entries {
            if !e.samples.is_empty() {
                e.stale_before = Some(now);
            }
        }
    }

    fn is_fresh(&self, e: &Entry, s: &Sample, now: Instant) -> bool {
        now.saturating_duration_since(s.at) < self.config.reprobe_interval
            && e.stale_before.is_none_or(|t| s.at >= t)
    }

    /// The server to ask about `e`, if any: one without a result for it first,
    /// then the one with the stalest stale result; never one already asked about it
    /// or (unless `busy_ok`) busy with as many probes as it may run.
    fn pick_server(
        &self,
        e: &Entry,
        servers: &[PeerId],
        now: Instant,
        busy_ok: bool,
    ) -> Option<PeerId> {
        let available = servers.iter().filter(|s| {
            let busy = self.in_flight.iter().filter(|p| p.server == **s);
            let (mut probes, mut this_addr) = (0, false);
            for p in busy {
                probes += 1;
                this_addr |= p.addr == e.addr;
            }
            !this_addr
                && (busy_ok || probes < self.config.max_in_flight_per_server)
                && self
                    .backoff
                    .get(&(**s, e.addr.clone()))
                    .is_none_or(|until| *until <= now)
        });
        let mut stale: Option<(Instant, PeerId)> = None;
        for s in available {
            match e.samples.iter().find(|x| x.server == *s) {
                None => return Some(*s),
                Some(x) if !self.is_fresh(e, x, now) => {
                    if stale.is_none_or(|(at, _)| x.at < at) {
                        stale = Some((x.at, *s));
                    }
                }
                Some(_) => {}
            }
        }
        stale.map(|(_, s)| s)
    }

    /// Whether `e` wants a probe now: undecided, or holding a stale result.
    fn wants_probe(&self, e: &Entry, now: Instant) -> bool {
        if !e.public {
            return false;
        }
        !e.verdict.is_confirmed() || e.samples.iter().any(|s| !self.is_fresh(e, s, now))
    }

    /// The next probe to run, given the servers available now (connected, speaking
    /// AutoNAT v2), and the verdicts that changed because no server is left for an
    /// undecided address. `None` while as many probes as allowed are in flight, or
    /// nothing is due; call it again after each probe it returns, to start several.
    /// An address whose servers are all busy with it is not starved: it waits.
    pub fn next_probe(&mut self, now: Instant, servers: &[PeerId]) -> (Option<Probe>, Vec<Change>) {
        self.backoff.retain(|_, until| *until > now);
        let mut changes = Vec::new();
        if self.in_flight.len() >= self.config.max_in_flight {
            return (None, changes);
        }
        let mut found = None;
        let mut starved = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !self.wants_probe(e, now) {
                continue;
            }
            let running = self.in_flight.iter().filter(|p| p.addr == e.addr).count();
            if running >= self.config.target_confidence {
                continue;
            }
            match self.pick_server(e, servers, now, false) {
                Some(server) => {
                    found = Some((i, server));
                    break;
                }
                // Waiting for a busy server, or for its own probes, is no starving.
                None if running == 0 && self.pick_server(e, servers, now, true).is_none() => {
                    starved.push(i)
                }
                None => {}
            }
        }
        let found = found.map(|(i, server)| {
            let e = &mut self.entries[i];
            // A server turned up for an address that had none.
            if e.verdict.reason == Reason::NoServers {
                e.verdict.reason = Reason::Probing;
                changes.push(Change {
                    addr: e.addr.clone(),
                    verdict: e.verdict,
                });
            }
            Probe {
                addr: e.addr.clone(),
                server,
            }
        });
        for i in starved {
            let e = &mut self.entries[i];
            if !e.verdict.is_confirmed() && e.verdict.reason != Reason::NoServers {
                e.verdict.reason = Reason::NoServers;
                changes.push(Change {
                    addr: e.addr.clone(),
                    verdict: e.verdict,
                });
            }
        }
        if let Some(probe) = &found {
            self.in_flight.push(probe.clone());
        }
        (found, changes)
    }

    /// When something becomes due without any event: a result turning stale, or a
    /// server's backoff ending.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let stale = self.entries.iter().filter(|e| e.public).flat_map(|e| {
            e.samples
                .iter()
                .map(|s| s.at + self.config.reprobe_interval)
        });
        let backoffs = self.backoff.values().copied();
        stale.chain(backoffs).min()
    }

    /// The result of a probe in flight: evidence, or `None` when it taught us
    /// nothing (refused, timed out, no dial-back ...; the server is then not asked
    /// about this address for a while). Returns the verdict if it changed.
    pub fn on_result(
        &mut self,
        probe: &Probe,
        evidence: Option<Evidence>,
        now: Instant,
    ) -> Option<Change> {
        if let Some(i) = self.in_flight.iter().position(|p| p == probe) {
            self.in_flight.remove(i);
        }
        let Some(evidence) = evidence else {
            self.backoff.insert(
                (probe.server, probe.addr.clone()),
                now + self.config.server_backoff,
            );
            return None;
        };
        let (target, window) = (self.config.target_confidence, self.config.window);
        let e = self.entries.iter_mut().find(|e| e.addr == probe.addr)?;
        e.samples.retain(|s| s.server != probe.server);
        e.samples.push_back(Sample {
            server: probe.server,
            evidence,
            at: now,
        });
        while e.samples.len() > window {
            e.samples.pop_front();
        }
        let successes = e
            .samples
            .iter()
            .filter(|s| s.evidence == Evidence::Reachable)
            .count();
        let failures = e.samples.len() - successes;
        let (reachability, reason) = if successes >= failures + target {
            (Reachability::Reachable, Reason::Confirmed)
        } else if failures >= successes + target {
            (Reachability::Unreachable, Reason::Confirmed)
        } else {
            (Reachability::Unknown, Reason::Probing)
        };
        let before = e.verdict;
        e.verdict = Verdict {
            reachability,
            reason,
            successes,
            failures,
            needed: target,
        };
        let moved = (before.reachability, before.reason) != (reachability, reason);
        moved.then(|| Change {
            addr: e.addr.clone(),
            verdict: e.verdict,
        })
    }

    /// A probe in flight could not even start (the server went away): it taught
    /// us nothing, and the server is not asked about the address for a while.
    pub fn abort(&mut self, probe: &Probe, now: Instant) {
        let _ = self.on_result(probe, None, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn servers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    /// Runs probes until none is due, answering each with `answer(server index)`.
    fn run(
        t: &mut Tracker,
        now: Instant,
        servers: &[PeerId],
        answer: impl Fn(usize) -> Option<Evidence>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for _ in 0..100 {
            let (probe, starved) = t.next_probe(now, servers);
            changes.extend(starved);
            let Some(probe) = probe else { break };
            let i = servers.iter().position(|s| *s == probe.server).unwrap();
            changes.extend(t.on_result(&probe, answer(i), now));
        }
        changes
    }

    #[test]
    fn three_agreeing_servers_confirm_an_address_and_a_fourth_is_not_asked() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let addr = a("/ip4/8.8.8.8/tcp/4001");
        let new = t.set_addrs([(addr.clone(), true)], now);
        assert_eq!(new[0].verdict.reason, Reason::Probing);
        let s = servers(4);
        let changes = run(&mut t, now, &s, |_| Some(Evidence::Reachable));
        let v = t.verdict(&addr).unwrap();
        assert_eq!(v.reachability, Reachability::Reachable);
        assert_eq!((v.successes, v.failures), (3, 0), "stopped at the margin");
        assert_eq!(changes.len(), 1, "one change: to reachable");
        // Nothing is due until the results turn stale.
        assert_eq!(t.next_probe(now, &s).0, None);
        assert_eq!(t.next_wakeup(), Some(now + Duration::from_secs(3600)));
    }

    #[test]
    fn one_server_never_counts_twice_so_two_servers_give_no_verdict() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let addr = a("/ip4/8.8.8.8/tcp/4001");
        t.set_addrs([(addr.clone(), true)], now);
        let s = servers(2);
        let changes = run(&mut t, now, &s, |_| Some(Evidence::Unreachable));
        let v = t.verdict(&addr).unwrap();
        assert_eq!(v.reachability, Reachability::Unknown);
        assert_eq!((v.reason, v.failures), (Reason::NoServers, 2));
        assert_eq!(changes.last().unwrap().verdict.reason, Reason::NoServers);
        // A third server arrives: it is asked, and the address is confirmed
        // unreachable.
        let mut more = s.clone();
        more.push(PeerId::random());
        let changes = run(&mut t, now, &more, |_| Some(Evidence::Unreachable));
        let reasons: Vec<_> = changes.iter().map(|c| c.verdict.reason).collect();
        assert_eq!(reasons, [Reason::Probing, Reason::Confirmed]);
        let v = t.verdict(&addr).unwrap();
        assert_eq!((v.reachability, v.failures), (Reachability::Unreachable, 3));
    }

    #[test]
    fn disagreeing_servers_need_a_margin() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let addr = a("/ip4/8.8.8.8/tcp/4001");
        t.set_addrs([(addr.clone(), true)], now);
        // Server 0 fails, the others succeed.
        let s = servers(6);
        run(&mut t, now, &s, |i| {
            Some(if i == 0 {
                Evidence::Unreachable
            } else {
                Evidence::Reachable
            })
        });
        let v = t.verdict(&addr).unwrap();
        assert_eq!(v.reachability, Reachability::Reachable);
        assert_eq!(
            (v.successes, v.failures),
            (4, 1),
            "4 - 1 reaches the margin of 3"
        );
        // Alternating answers never reach it within the window.
        let mut t = Tracker::new(TrackerConfig::default());
        t.set_addrs([(addr.clone(), true)], now);
        run(&mut t, now, &s, |i| {
            Some(if i % 2 == 0 {
                Evidence::Unreachable
            } else {
                Evidence::Reachable
            })
        });
        let v = t.verdict(&addr).unwrap();
        assert_eq!(v.reachability, Reachability::Unknown);
    }

    #[test]
    fn non_public_addresses_are_never_probed_nor_confirmed() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let lo = a("/ip4/127.0.0.1/tcp/4001");
        let lan = a("/ip4/192.168.1.2/tcp/4001");
        let new = t.set_addrs([(lo.clone(), false), (lan.clone(), false)], now);
        assert!(new.iter().all(|c| c.verdict.reason == Reason::NotPublic));
        let s = servers(5);
        assert_eq!(t.next_probe(now, &s), (None, vec![]));
        assert_eq!(t.verdict(&lo).unwrap().reachability, Reachability::Unknown);
        assert_eq!(t.next_wakeup(), None);
    }

    #[test]
    fn failed_probes_back_the_server_off_and_teach_nothing() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let addr = a("/ip4/8.8.8.8/tcp/4001");
        t.set_addrs([(addr.clone(), true)], now);
        let s = servers(1);
        let (probe, _) = t.next_probe(now, &s);
        let probe = probe.unwrap();
        // One probe of an address with one server at a time.
        assert_eq!(t.next_probe(now, &s), (None, vec![]));
        assert_eq!(t.on_result(&probe, None, now), None);
        let (none, starved) = t.next_probe(now, &s);
        assert_eq!(none, None, "the server is backed off");
        assert_eq!(starved[0].verdict.reason, Reason::NoServers);
        let (v0, v1) = {
            let v = t.verdict(&addr).unwrap();
            (v.successes, v.failures)
        };
        assert_eq!((v0, v1), (0, 0));
        let back = now + Duration::from_secs(600);
        assert_eq!(t.next_wakeup(), Some(back));
        assert_eq!(t.next_probe(back, &s).0.unwrap().server, s[0]);
    }

    #[test]
    fn a_server_backed_off_for_one_address_is_still_asked_about_another() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let (x, y) = (a("/ip4/8.8.8.8/tcp/1"), a("/ip4/9.9.9.9/tcp/1"));
        t.set_addrs([(x.clone(), true), (y.clone(), true)], now);
        let s = servers(1);
        let (probe, _) = t.next_probe(now, &s);
        let probe = probe.unwrap();
        assert_eq!(probe.addr, x);
        t.abort(&probe, now);
        let (next, starved) = t.next_probe(now, &s);
        assert_eq!(next.unwrap().addr, y);
        assert_eq!(starved[0].addr, x);
    }

    #[test]
    fn confirmed_addresses_are_reprobed_on_the_timer_and_a_changed_network_flips_them() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let addr = a("/ip4/8.8.8.8/tcp/4001");
        t.set_addrs([(addr.clone(), true)], now);
        let s = servers(3);
        run(&mut t, now, &s, |_| Some(Evidence::Reachable));
        assert_eq!(
            t.verdict(&addr).unwrap().reachability,
            Reachability::Reachable
        );
        // An hour later the address is re-probed; meanwhile it closed.
        let later = now + Duration::from_secs(3600);
        let changes = run(&mut t, later, &s, |_| Some(Evidence::Unreachable));
        let v = t.verdict(&addr).unwrap();
        assert_eq!(
            (v.reachability, v.failures, v.successes),
            (Reachability::Unreachable, 3, 0)
        );
        // Reachable -> unknown (servers disagree) -> unreachable.
        let steps: Vec<_> = changes.iter().map(|c| c.verdict.reachability).collect();
        assert_eq!(steps, [Reachability::Unknown, Reachability::Unreachable]);
    }

    #[test]
    fn a_changed_address_set_reprobes_everything_and_forgets_what_went() {
        let mut t = Tracker::new(TrackerConfig::default());
        let now = Instant::now();
        let (x, y) = (a("/ip4/8.8.8.8/tcp/1"), a("/ip4/8.8.8.8/tcp/2"));
        t.set_addrs([(x.clone(), true)], now);
        let s = servers(3);
        run(&mut t, now, &s, |_| Some(Evidence::Reachable));
        assert_eq!(t.next_probe(now, &s).0, None);
        let soon = now + Duration::from_secs(1);
        let new = t.set_addrs([(x.clone(), true), (y.clone(), true)], soon);
        assert_eq!(new.len(), 1);
        // x is probed again although its results are only a second old.
        let (probe, _) = t.next_probe(soon, &s);
        assert_eq!(probe.unwrap().addr, x);
        t.set_addrs([(y.clone(), true)], soon);
        assert_eq!(t.verdict(&x), None);
        let running: Vec<_> = t.in_flight().iter().map(|p| p.addr.clone()).collect();
        assert_eq!(running, std::slice::from_ref(&x));
        // The result of a probe for a forgotten address is dropped.
        let stale = Probe {
            addr: x.clone(),
            server: s[0],
        };
        assert_eq!(t.on_result(&stale, Some(Evidence::Reachable), soon), None);
        assert!(t.in_flight().is_empty());
    }

    #[test]
    fn probes_run_at_once_with_distinct_servers_within_the_limits() {
        let now = Instant::now();
        let addrs: Vec<Multiaddr> = (1..=4u16)
            .map(|p| a(&format!("/ip4/8.8.8.8/tcp/{p}")))
            .collect();
        let start_all = |t: &mut Tracker, s: &[PeerId]| {
            let mut started = Vec::new();
            loop {
                let (probe, starved) = t.next_probe(now, s);
                assert!(starved.is_empty(), "busy servers starve nobody");
                let Some(probe) = probe else { break };
                started.push(probe);
            }
            started
        };
        // With many servers, the total is the limit.
        let mut t = Tracker::new(TrackerConfig::default());
        t.set_addrs(addrs.iter().map(|x| (x.clone(), true)), now);
        assert_eq!(start_all(&mut t, &servers(10)).len(), 6);
        // With three, two per server (under a higher total).
        let mut t = Tracker::new(TrackerConfig::default().with_max_in_flight(10, 2));
        t.set_addrs(addrs.iter().map(|x| (x.clone(), true)), now);
        let s = servers(3);
        let started = start_all(&mut t, &s);
        // 2 per server, 3 per address, never one pair twice.
        assert_eq!(started.len(), 6);
        for server in &s {
            assert_eq!(started.iter().filter(|p| p.server == *server).count(), 2);
        }
        assert_eq!(started.iter().filter(|p| p.addr == addrs[0]).count(), 3);
        assert_eq!(started.iter().filter(|p| p.addr == addrs[1]).count(), 3);
        // The results come back in any order; the verdicts are those of the rule.
        for probe in started.iter().rev() {
            t.on_result(probe, Some(Evidence::Unreachable), now);
        }
        for x in &addrs[..2] {
            let v = t.verdict(x).unwrap();
            assert_eq!((v.reachability, v.failures), (Reachability::Unreachable, 3));
        }
        let changes = run(&mut t, now, &s, |_| Some(Evidence::Reachable));
        assert_eq!(changes.len(), 2, "the other two addresses confirmed");
        assert!(t.in_flight().is_empty());
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let mut t = Tracker::new(TrackerConfig::default().with_max_addrs(4));
        let now = Instant::now();
        let many = (0..100u16).map(|p| (a(&format!("/ip4/8.8.8.8/tcp/{p}")), true));
        assert_eq!(t.set_addrs(many, now).len(), 4);
        assert_eq!(t.verdicts().len(), 4);
    }
}
