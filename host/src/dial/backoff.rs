//! Dial backoff: a peer, or an address, that keeps failing is not dialed again at
//! once.
//!
//! After the `n`-th failure in a row the key is backed off for
//! `min(max, base * 2^(n-1))`, scaled by a jitter factor drawn from
//! `[1 - jitter, 1 + jitter]` and capped at `max` again. The defaults
//! ([`BackoffConfig::default`]): base 1 s, doubling, cap 5 min, jitter ±25 %, so a
//! peer down for good is retried about every 5 minutes and a crowd of dialers does
//! not come back in lockstep. A success forgets the key; so does a quiet period:
//! a key whose backoff ended more than `max` ago starts over at `base`.
//!
//! Pure: the caller passes the time and the random draw. At most `capacity` keys are
//! kept; when full, the key whose backoff ends first makes room.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How a [`Backoff`] grows.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// The backoff after the first failure (default 1 s).
    pub base: Duration,
    /// The longest backoff (default 5 min).
    pub max: Duration,
    /// The relative jitter, in `0.0..=1.0` (default 0.25: ±25 %).
    pub jitter: f64,
    /// The most keys remembered (default 4096).
    pub capacity: usize,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.25,
            capacity: 4096,
        }
    }
}

impl BackoffConfig {
    /// The backoff after `failures` failures in a row, for a random draw `unit` in
    /// `[0, 1)` (0.5: no jitter).
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let plain = self
            .base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0);
        plain.mul_f64(factor).min(self.max)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    until: Instant,
}

/// Failures in a row per key (a peer id or an address), and until when each key is
/// backed off.
#[derive(Debug, Clone)]
pub struct Backoff<K> {
    config: BackoffConfig,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    /// An empty backoff table.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            entries: HashMap::new(),
        }
    }

    /// How long `key` is still backed off at `now`, if it is.
    pub fn remaining(&self, key: &K, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        let left = entry.until.checked_duration_since(now)?;
        (!left.is_zero()).then_some(left)
    }

    /// Records a failure of `key` at `now` with the random draw `unit` in `[0, 1)`;
    /// returns the backoff now in force.
    pub fn failed(&mut self, key: &K, now: Instant, unit: f64) -> Duration {
        let stale = |e: &Entry| {
            now.checked_duration_since(e.until)
                .is_some_and(|since| since > self.config.max)
        };
        let failures = match self.entries.get(key) {
            Some(e) if !stale(e) => e.failures.saturating_add(1),
            _ => 1,
        };
        if !self.entries.contains_key(key) && self.entries.len() >= self.config.capacity.max(1) {
            self.make_room(now);
        }
        let delay = self.config.delay(failures, unit);
        self.entries.insert(
            key.clone(),
            Entry {
                failures,
                until: now + delay,
            },
        );
        delay
    }

    /// Forgets `key`: it connected.
    pub fn succeeded(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// The number of keys remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, e| e.until > now);
        if self.entries.len() >= self.config.capacity.max(1) {
            let first = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.until)
                .map(|(k, _)| k.clone());
            if let Some(k) = first {
                self.entries.remove(&k);
            }
        }
    }
}

/// The host's two backoff tables: peers (a whole dial failed) and addresses (one
/// attempt failed). Addresses are keyed without their `/p2p/` suffix.
#[derive(Debug, Clone)]
pub struct DialBackoff {
    /// Peers whose last dials failed.
    pub peers: Backoff<libp2p_identity::PeerId>,
    /// Addresses whose last attempts failed.
    pub addrs: Backoff<multiaddr::Multiaddr>,
}

impl DialBackoff {
    /// Empty tables, both growing as `config` says.
    pub fn new(config: BackoffConfig) -> Self {
        DialBackoff {
            peers: Backoff::new(config.clone()),
            addrs: Backoff::new(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_a_second_to_five_minutes_with_bounded_jitter() {
        let c = BackoffConfig::default();
        let secs: Vec<u64> = (1..=11).map(|n| c.delay(n, 0.5).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(c.delay(1, 0.0), Duration::from_millis(750));
        assert_eq!(c.delay(1, 1.0), Duration::from_millis(1250));
        // Jitter never takes it past the cap, and absurd counts do not overflow.
        assert_eq!(c.delay(9, 1.0), Duration::from_secs(300));
        assert_eq!(c.delay(u32::MAX, 0.9), Duration::from_secs(300));
    }

    #[test]
    fn failures_count_up_a_success_forgets_and_a_quiet_period_starts_over() {
        let mut b = Backoff::new(BackoffConfig::default());
        let t0 = Instant::now();
        assert_eq!(b.remaining(&"p", t0), None);
        assert_eq!(b.failed(&"p", t0, 0.5), Duration::from_secs(1));
        assert_eq!(
            b.remaining(&"p", t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(b.remaining(&"p", t0 + Duration::from_secs(1)), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.failed(&"p", t1, 0.5), Duration::from_secs(2));
        b.succeeded(&"p");
        assert_eq!(b.failed(&"p", t1, 0.5), Duration::from_secs(1));
        // Long after the backoff ended, a failure counts as the first again.
        let later = t1 + Duration::from_secs(1) + Duration::from_secs(301);
        assert_eq!(b.failed(&"p", later, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn a_full_table_drops_what_ends_first() {
        let mut b = Backoff::new(BackoffConfig {
            capacity: 2,
            ..BackoffConfig::default()
        });
        let t0 = Instant::now();
        b.failed(&1, t0, 0.5);
        b.failed(&2, t0, 0.5);
        b.failed(&2, t0, 0.5);
        b.failed(&3, t0, 0.5);
        assert_eq!(b.len(), 2);
        assert_eq!(b.remaining(&1, t0), None);
        assert!(b.remaining(&2, t0).is_some() && b.remaining(&3, t0).is_some());
    }
}
