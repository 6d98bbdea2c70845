//! The knobs of hole punching, with the spec's and the deployed implementations'
//! values as defaults.

use std::time::Duration;

/// How hole punching runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Attempts (exchange, then simultaneous connect) before giving up: the spec's 3
    /// (the first and two retries).
    pub max_attempts: u8,
    /// How long the peer may take to send each message of an exchange (10 s).
    pub exchange_timeout: Duration,
    /// How long after the punch time (RTT/2 after the SYNC) a direct connection may
    /// take to appear before the attempt counts as failed (5 s, go-libp2p's dial
    /// timeout for hole punching).
    pub punch_timeout: Duration,
    /// Whether to give up at once, without attempts, when both sides' addresses look
    /// like symmetric NATs ([`looks_symmetric`](crate::looks_symmetric)); default on.
    pub fail_fast_symmetric: bool,
    /// Whether a failed first attempt ends the hole punch when one side's addresses
    /// look like a symmetric NAT's; default on. Against a full-cone or
    /// address-restricted NAT the symmetric side's packets get in whatever port they
    /// leave from, so such a pair punches at the first attempt; when it does not, the
    /// other NAT filters by port (port-restricted cone, or symmetric without the
    /// addresses to show it), and retries only cost time.
    pub one_attempt_when_symmetric: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_attempts: 3,
            exchange_timeout: Duration::from_secs(10),
            punch_timeout: Duration::from_secs(5),
            fail_fast_symmetric: true,
            one_attempt_when_symmetric: true,
        }
    }
}

impl Config {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts before giving up (at least 1).
    pub fn with_max_attempts(mut self, attempts: u8) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long each message of an exchange may take.
    pub fn with_exchange_timeout(mut self, timeout: Duration) -> Self {
        self.exchange_timeout = timeout;
        self
    }

    /// How long a direct connection may take after the punch time.
    pub fn with_punch_timeout(mut self, timeout: Duration) -> Self {
        self.punch_timeout = timeout;
        self
    }

    /// Whether two symmetric-looking sides give up without trying.
    pub fn with_fail_fast_symmetric(mut self, on: bool) -> Self {
        self.fail_fast_symmetric = on;
        self
    }

    /// Whether a failed first attempt with one symmetric-looking side ends the punch.
    pub fn with_one_attempt_when_symmetric(mut self, on: bool) -> Self {
        self.one_attempt_when_symmetric = on;
        self
    }

    /// Whether a failed attempt `attempts` ends the hole punch although attempts are
    /// left, because one side looks symmetric
    /// ([`one_attempt_when_symmetric`](Self::one_attempt_when_symmetric)).
    pub fn symmetric_gives_up(&self, local_symmetric: bool, remote_symmetric: bool) -> bool {
        self.one_attempt_when_symmetric && (local_symmetric || remote_symmetric)
    }
}
