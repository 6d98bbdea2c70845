//! Negotiation settings: protocol version and bounds.

/// Which flavour of multistream-select 1.0.0 the dialer speaks. Identical on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// Plain call and response: the dialer waits for the echo before returning.
    #[default]
    V1,
    /// 0-RTT: with a single proposed protocol the dialer returns at once; the header and
    /// proposal leave with the application's first write (or flush, or read), and the
    /// echo is checked on the first read. With several protocols this behaves as
    /// [`Version::V1`].
    V1Lazy,
}

/// The default bound on a message: go-libp2p rejects anything longer.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1024;
/// The default bound on rejected proposals in one negotiation.
pub const DEFAULT_MAX_NA_ROUNDS: usize = 32;

/// Bounds for one negotiation. Build with [`Config::default`] and the `with_*` setters.
#[derive(Debug, Clone)]
pub struct Config {
    max_message_len: usize,
    max_na_rounds: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_na_rounds: DEFAULT_MAX_NA_ROUNDS,
        }
    }
}

impl Config {
    /// The default configuration (1024-byte messages, 32 `na` rounds).
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest message accepted or sent, counted as the varint length value
    /// (payload plus the trailing `\n`). Values below 19 would not even fit the header
    /// and are raised to 19.
    pub fn with_max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = max.max(crate::codec::HEADER_LEN);
        self
    }

    /// How many proposals may be rejected (`na`, or answered with `ls`) before the
    /// negotiation fails with [`crate::NegotiationError::TooManyRounds`].
    pub fn with_max_na_rounds(mut self, max: usize) -> Self {
        self.max_na_rounds = max;
        self
    }

    /// See [`Config::with_max_message_len`].
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// See [`Config::with_max_na_rounds`].
    pub fn max_na_rounds(&self) -> usize {
        self.max_na_rounds
    }
}
