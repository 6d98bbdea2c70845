//! The server's rate limits, apart from any I/O: requests per minute (in total, per
//! peer, and those that need dial data) and requests in progress (in total and per
//! peer).
//!
//! Time is passed in (`now`), so tests drive it by hand. Only accepted requests are
//! counted, so a flood of rejected ones does not keep honest peers out longer, and
//! the memory kept is bounded by the per-minute limits.

use super::config::ServerConfig;
use libp2p_identity::PeerId;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The window the per-minute limits count in.
const WINDOW: Duration = Duration::from_secs(60);

/// Why a request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The server served its maximum of requests this minute.
    #[error("{0} requests served in the last minute")]
    TooManyRequests(usize),
    /// This peer's requests this minute are at their maximum.
    #[error("{0} requests from this peer in the last minute")]
    TooManyFromPeer(usize),
    /// The maximum of requests that need dial data was served this minute.
    #[error("{0} requests with dial data in the last minute")]
    TooManyDialData(usize),
    /// The server has its maximum of requests in progress.
    #[error("{0} requests in progress")]
    TooManyConcurrent(usize),
    /// This peer has its maximum of requests in progress.
    #[error("{0} requests of this peer in progress")]
    TooManyConcurrentFromPeer(usize),
    /// The request came over a relayed connection.
    #[error("the request came over a relayed connection")]
    Relayed,
    /// No memory for the request's buffer.
    #[error("no memory for the request: {0}")]
    Resources(String),
}

/// One request in progress; give it back with [`RateLimiter::finish`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a request slot must be given back with finish"]
pub struct RequestSlot {
    peer: PeerId,
}

/// The rate limits of a server.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: usize,
    per_peer_per_minute: usize,
    dial_data_per_minute: usize,
    concurrent: usize,
    concurrent_per_peer: usize,
    /// Accepted requests of the last minute, oldest first.
    recent: VecDeque<(Instant, PeerId)>,
    /// Requests of the last minute that needed dial data.
    recent_dial_data: VecDeque<Instant>,
    in_progress: HashMap<PeerId, usize>,
}

impl RateLimiter {
    /// A limiter with `config`'s limits.
    pub fn new(config: &ServerConfig) -> Self {
        RateLimiter {
            per_minute: config.max_requests_per_minute,
            per_peer_per_minute: config.max_requests_per_peer_per_minute,
            dial_data_per_minute: config.max_dial_data_requests_per_minute,
            concurrent: config.max_concurrent,
            concurrent_per_peer: config.max_concurrent_per_peer,
            recent: VecDeque::new(),
            recent_dial_data: VecDeque::new(),
            in_progress: HashMap::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        while self
            .recent_dial_data
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.recent_dial_data.pop_front();
        }
    }

    /// Admits a request of `peer` at `now`, or says why not.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] naming the limit reached.
    pub fn accept(&mut self, peer: PeerId, now: Instant) -> Result<RequestSlot, Rejection> {
        self.expire(now);
        let total: usize = self.in_progress.values().sum();
        if total >= self.concurrent {
            return Err(Rejection::TooManyConcurrent(self.concurrent));
        }
        if self.in_progress.get(&peer).copied().unwrap_or(0) >= self.concurrent_per_peer {
            return Err(Rejection::TooManyConcurrentFromPeer(
                self.concurrent_per_peer,
            ));
        }
        if self.recent.len() >= self.per_minute {
            return Err(Rejection::TooManyRequests(self.per_minute));
        }
        let from_peer = self.recent.iter().filter(|(_, p)| *p == peer).count();
        if from_peer >= self.per_peer_per_minute {
            return Err(Rejection::TooManyFromPeer(self.per_peer_per_minute));
        }
        self.recent.push_back((now, peer));
        *self.in_progress.entry(peer).or_insert(0) += 1;
        Ok(RequestSlot { peer })
    }

    /// Admits the dial data of an admitted request at `now`, or says why not.
    ///
    /// # Errors
    ///
    /// [`Rejection::TooManyDialData`].
    pub fn accept_dial_data(&mut self, now: Instant) -> Result<(), Rejection> {
        self.expire(now);
        if self.recent_dial_data.len() >= self.dial_data_per_minute {
            return Err(Rejection::TooManyDialData(self.dial_data_per_minute));
        }
        self.recent_dial_data.push_back(now);
        Ok(())
    }

    /// Gives a request's slot back: it is no longer in progress.
    pub fn finish(&mut self, slot: RequestSlot) {
        if let Some(n) = self.in_progress.get_mut(&slot.peer) {
            *n -= 1;
            if *n == 0 {
                self.in_progress.remove(&slot.peer);
            }
        }
    }

    /// Requests in progress.
    pub fn in_progress(&self) -> usize {
        self.in_progress.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(
            &ServerConfig::default()
                .with_requests_per_minute(5, 2)
                .with_concurrency(3, 1)
                .with_dial_data_requests_per_minute(1),
        )
    }

    #[test]
    fn requests_in_progress_are_bounded_in_total_and_per_peer() {
        let mut l = limiter();
        let t = Instant::now();
        let (a, b, c, d) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        let sa = l.accept(a, t).unwrap();
        assert_eq!(l.accept(a, t), Err(Rejection::TooManyConcurrentFromPeer(1)));
        let sb = l.accept(b, t).unwrap();
        let sc = l.accept(c, t).unwrap();
        assert_eq!(l.accept(d, t), Err(Rejection::TooManyConcurrent(3)));
        assert_eq!(l.in_progress(), 3);
        l.finish(sa);
        // a's second request of the minute is allowed once its first is done.
        let sa = l.accept(a, t).unwrap();
        for s in [sa, sb, sc] {
            l.finish(s);
        }
        assert_eq!(l.in_progress(), 0);
        assert!(l.in_progress.is_empty(), "no entry left per peer");
    }

    #[test]
    fn per_minute_limits_slide_with_the_clock() {
        let mut l = limiter();
        let t = Instant::now();
        let a = PeerId::random();
        for _ in 0..2 {
            let s = l.accept(a, t).unwrap();
            l.finish(s);
        }
        assert_eq!(l.accept(a, t), Err(Rejection::TooManyFromPeer(2)));
        for _ in 0..3 {
            let s = l.accept(PeerId::random(), t).unwrap();
            l.finish(s);
        }
        assert_eq!(
            l.accept(PeerId::random(), t + Duration::from_secs(59)),
            Err(Rejection::TooManyRequests(5))
        );
        // A minute later the window is empty again.
        let later = t + Duration::from_secs(60);
        let s = l.accept(a, later).unwrap();
        l.finish(s);
        assert!(l.recent.len() <= 5, "memory bounded by the limit");
    }

    #[test]
    fn dial_data_requests_have_their_own_limit() {
        let mut l = limiter();
        let t = Instant::now();
        assert_eq!(l.accept_dial_data(t), Ok(()));
        assert_eq!(l.accept_dial_data(t), Err(Rejection::TooManyDialData(1)));
        assert_eq!(l.accept_dial_data(t + WINDOW), Ok(()));
    }
}
