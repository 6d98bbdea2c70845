//! The server's limits and timeouts.

use std::ops::RangeInclusive;
use std::time::Duration;

/// How much an AutoNAT server serves, and how long each step may take.
///
/// The defaults: at most 60 requests a minute from everyone together, 12 from one
/// peer and 12 that need dial data (go-libp2p's figures); at most 8 requests in
/// progress at once, 2 from one peer; dial data of 30 000 to 100 000 bytes (the
/// spec's range, picked at random per request); 15 s to read a message, 30 s for all
/// the dial data, 15 s for the dial-back. Build it with [`Default`] and the `with_*`
/// methods; fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Requests served per minute, all peers together.
    pub max_requests_per_minute: usize,
    /// Requests served per minute from one peer.
    pub max_requests_per_peer_per_minute: usize,
    /// Requests per minute that needed dial data (a dial to another IP address).
    pub max_dial_data_requests_per_minute: usize,
    /// Requests in progress at once, all peers together.
    pub max_concurrent: usize,
    /// Requests in progress at once from one peer.
    pub max_concurrent_per_peer: usize,
    /// How much dial data to ask for before dialing an IP address that is not the
    /// client's (the amplification guard); each request draws from this range.
    pub dial_data: RangeInclusive<u64>,
    /// The longest wait for one message of the client.
    pub message_timeout: Duration,
    /// The longest the client may take to send all the dial data.
    pub dial_data_timeout: Duration,
    /// The longest the dial-back may take: connecting, the nonce and its
    /// acknowledgement.
    pub dial_back_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_requests_per_minute: 60,
            max_requests_per_peer_per_minute: 12,
            max_dial_data_requests_per_minute: 12,
            max_concurrent: 8,
            max_concurrent_per_peer: 2,
            dial_data: 30_000..=100_000,
            message_timeout: Duration::from_secs(15),
            dial_data_timeout: Duration::from_secs(30),
            dial_back_timeout: Duration::from_secs(15),
        }
    }
}

impl ServerConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests per minute, in total and per peer.
    pub fn with_requests_per_minute(mut self, total: usize, per_peer: usize) -> Self {
        self.max_requests_per_minute = total;
        self.max_requests_per_peer_per_minute = per_peer;
        self
    }

    /// Requests per minute that need dial data.
    pub fn with_dial_data_requests_per_minute(mut self, max: usize) -> Self {
        self.max_dial_data_requests_per_minute = max;
        self
    }

    /// Requests in progress at once, in total and per peer.
    pub fn with_concurrency(mut self, total: usize, per_peer: usize) -> Self {
        self.max_concurrent = total;
        self.max_concurrent_per_peer = per_peer;
        self
    }

    /// The dial data asked for (an empty range is taken as its start).
    pub fn with_dial_data(mut self, bytes: RangeInclusive<u64>) -> Self {
        self.dial_data = bytes;
        self
    }

    /// The timeouts: one message, all the dial data, the dial-back.
    pub fn with_timeouts(
        mut self,
        message: Duration,
        dial_data: Duration,
        dial_back: Duration,
    ) -> Self {
        self.message_timeout = message;
        self.dial_data_timeout = dial_data;
        self.dial_back_timeout = dial_back;
        self
    }

    /// The dial data one request is asked for.
    pub(crate) fn draw_dial_data(&self) -> u64 {
        let (lo, hi) = (*self.dial_data.start(), *self.dial_data.end());
        if hi <= lo {
            lo
        } else {
            rand::random_range(lo..=hi)
        }
    }
}
