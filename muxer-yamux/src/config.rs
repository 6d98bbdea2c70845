//! The knobs of the yamux muxer, checked before use.

use std::time::Duration;

/// The initial window of every yamux stream (256 KiB), fixed by the spec.
pub const STREAM_WINDOW: usize = 256 * 1024;

/// Streams the `yamux` crate may still hold after we dropped them (it reaps dropped
/// streams asynchronously). Its own stream limit is ours plus this slack, so that the
/// lag never makes it refuse a stream we counted as free; a refused outbound stream
/// kills the whole connection in `yamux` 0.14.
pub(crate) const REAP_SLACK: usize = 32;

/// Why a [`YamuxConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_streams` must be at least 1.
    #[error("max_streams must be at least 1")]
    NoStreams,
    /// `max_streams` is so large that the windows overflow.
    #[error("max_streams {0} is too large")]
    TooManyStreams(usize),
    /// The connection receive window must give every stream its initial 256 KiB.
    #[error("max_receive_window {window} is below 256 KiB x max_streams = {min}")]
    WindowTooSmall {
        /// The configured window.
        window: usize,
        /// The smallest allowed window.
        min: usize,
    },
    /// `split_send_size` must be at least 1 byte.
    #[error("split_send_size must be at least 1")]
    ZeroSplitSendSize,
    /// `inbound_backlog` must be at least 1.
    #[error("inbound_backlog must be at least 1")]
    ZeroBacklog,
    /// A window boost must allow some extra window per stream and per connection,
    /// at most 1 GiB per stream, and grow by a factor of 2 to 256.
    #[error(
        "window boost: max_per_stream must be 1..=1 GiB, max_per_connection at least 1 \
         and growth_factor 2..=256 (got {per_stream}, {per_connection} and {growth_factor})"
    )]
    BadBoost {
        /// The configured most extra window per stream.
        per_stream: u32,
        /// The configured most extra window per connection.
        per_connection: usize,
        /// The configured growth factor.
        growth_factor: u32,
    },
    /// Keep-alive durations must be non-zero.
    #[error("keep-alive: idle and timeout must be non-zero")]
    BadKeepAlive,
}

/// Receive window that a stream earns by reading, beyond the spec's initial 256 KiB,
/// so that one stream can fill a long link.
///
/// The remote's credit is decided beside the `yamux` crate, never by it (its own
/// window updates are taken off the wire; its window is only room in its buffer, which
/// it grows as it likes); every growth is decided here, receiver-driven, as TCP and
/// QUIC auto-tune: a stream whose
/// application consumed a full window within two round trips gets its window raised to
/// `growth_factor` times what it consumed in that window (the first time, it must have
/// consumed two initial windows), within `max_per_stream`, `link_rate x rtt`,
/// `max_per_connection` for all streams together, and what the memory budget grants
/// (each growth is reserved before it is sent; a denied growth leaves the window as
/// it is). The round trip is the smallest one measured from yamux's pings, but at
/// least 1 ms: on loopback a busy reader is scheduled less often than pings come
/// back, so it may earn up to `link_rate x 1 ms` (1.5 MiB by default) there. A stream
/// nobody reads never grows past 256 KiB, and a grant is bounded by
/// bytes the reader demonstrably consumed, so a remote that delays its pongs (and so
/// inflates the measured round trip) cannot inflate it.
///
/// Bytes the remote sends beyond yamux's own window (while yamux's room still lags
/// the credit granted) wait in the muxer until yamux has room; a peer that sends more
/// than it was granted fails the connection. The peer sees only standard yamux window
/// updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBoost {
    /// The rate, in bytes per second, a stream may reach on a long link: a stream's
    /// extra window never exceeds this times the measured round-trip time.
    pub link_rate: u64,
    /// The most extra window one stream gets.
    pub max_per_stream: u32,
    /// The most extra window all streams of one connection get together: the bound
    /// on what a connection can make us hold on top of yamux's own buffers.
    pub max_per_connection: usize,
    /// A stream that consumed a full window within two round trips has its window
    /// raised to this many times what it consumed (2 is TCP's slow start; more lets
    /// a reader that keeps up reach a long link's bandwidth-delay product in fewer
    /// round trips).
    pub growth_factor: u32,
}

impl Default for WindowBoost {
    /// 1.5 GiB/s (about 12.9 Gbit/s), at most 96 MiB per stream and 256 MiB per
    /// connection, growth x64 per window consumed in time: a reader that keeps up on
    /// a 60 ms path has 32 MiB of window two round trips after its first byte, and
    /// 92 MiB one round trip later (`rtt x link_rate`; what the connection's budget
    /// grants: about 80% of the default 128 MiB connection scope). A 64 MiB window,
    /// the previous default, held one 60 ms stream at 0.7-0.85 of loopback, since the
    /// relay's and the sockets' queues add to the round trip a window must cover. The factor bounds a grant by what the reader
    /// consumed; what a connection may hold in all is the budget's to bound.
    fn default() -> Self {
        WindowBoost {
            link_rate: 3 << 29,
            max_per_stream: 96 << 20,
            max_per_connection: 256 << 20,
            growth_factor: 64,
        }
    }
}

impl WindowBoost {
    /// The largest `max_per_stream` accepted.
    pub const MAX_PER_STREAM: u32 = 1 << 30;
    /// The largest `growth_factor` accepted.
    pub const MAX_GROWTH_FACTOR: u32 = 256;

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_per_stream == 0
            || self.max_per_stream > Self::MAX_PER_STREAM
            || self.max_per_connection == 0
            || !(2..=Self::MAX_GROWTH_FACTOR).contains(&self.growth_factor)
        {
            return Err(ConfigError::BadBoost {
                per_stream: self.max_per_stream,
                per_connection: self.max_per_connection,
                growth_factor: self.growth_factor,
            });
        }
        Ok(())
    }
}

/// Keep-alive pings that notice a dead link: a relay or NAT that stops passing bytes
/// without closing anything, which neither TCP nor the `yamux` crate notices (its
/// own ping only runs while the connection is polled, and is not timed out).
///
/// After `idle` without any inbound byte the muxer sends a ping of its own (its
/// answer never reaches the `yamux` crate); when still nothing has arrived `timeout`
/// later, the connection fails with "keep-alive: no answer from the remote within
/// …", and so does every stream on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence after which a ping is sent.
    pub idle: Duration,
    /// How long a ping may stay unanswered (with nothing else arriving either).
    pub timeout: Duration,
}

impl Default for KeepAlive {
    /// A ping after 10 s without inbound traffic, failure 15 s later: a dead link is
    /// noticed within 25 s.
    fn default() -> Self {
        KeepAlive {
            idle: Duration::from_secs(10),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Configuration of the yamux muxer.
///
/// Defaults: 512 streams; 64 KiB data frames, the largest go-yamux and js-libp2p's
/// yamux send (the `yamux` crate and rust-libp2p send 16 KiB: every frame is a
/// command to the connection task and a wake-up, and with 16 KiB frames those cost
/// a quarter of single-stream throughput end to end; see BENCHMARKS.md); a 512 MiB
/// cap on a connection's receive windows together (256 KiB x 512 streams of initial
/// windows, the rest for grown ones); a backlog of 256 inbound streams not yet
/// accepted (the spec's ACK backlog); the default [`WindowBoost`] and [`KeepAlive`].
///
/// What a remote can make a connection buffer is charged to the budget given to
/// [`StreamMuxer::upgrade_with_budget`](weft_upgrader::StreamMuxer::upgrade_with_budget):
/// see the crate docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamuxConfig {
    pub(crate) max_streams: usize,
    pub(crate) max_receive_window: usize,
    pub(crate) split_send_size: usize,
    pub(crate) inbound_backlog: usize,
    pub(crate) window_boost: Option<WindowBoost>,
    pub(crate) keep_alive: Option<KeepAlive>,
}

impl Default for YamuxConfig {
    fn default() -> Self {
        YamuxConfig {
            max_streams: 512,
            max_receive_window: 512 * 1024 * 1024,
            split_send_size: 64 * 1024,
            inbound_backlog: 256,
            window_boost: Some(WindowBoost::default()),
            keep_alive: Some(KeepAlive::default()),
        }
    }
}

impl YamuxConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most streams open at once on a connection, both directions together.
    ///
    /// Opening more fails with `MuxerError::TooManyStreams`; inbound streams beyond the
    /// limit are reset.
    pub fn with_max_streams(mut self, max_streams: usize) -> Self {
        self.max_streams = max_streams;
        self
    }

    /// Sets the most bytes the remote may have in flight to us over all streams of a
    /// connection: the bound on receive buffer memory. Every stream starts with a
    /// 256 KiB window that grows as its reader consumes (see [`WindowBoost`]), up to
    /// this total. Must be at least 256 KiB x `max_streams`.
    pub fn with_max_receive_window(mut self, bytes: usize) -> Self {
        self.max_receive_window = bytes;
        self
    }

    /// Sets the largest data frame we send; bigger writes are split.
    pub fn with_split_send_size(mut self, bytes: usize) -> Self {
        self.split_send_size = bytes;
        self
    }

    /// Sets how many inbound streams may wait for `accept_stream`. When the backlog is
    /// full, further inbound streams are reset.
    pub fn with_inbound_backlog(mut self, streams: usize) -> Self {
        self.inbound_backlog = streams;
        self
    }

    /// Sets how streams earn window beyond the initial 256 KiB, or `None` to keep
    /// every stream at 256 KiB.
    pub fn with_window_boost(mut self, boost: Option<WindowBoost>) -> Self {
        self.window_boost = boost;
        self
    }

    /// Sets the keep-alive, or `None` for none (a dead link then goes unnoticed
    /// until TCP gives up, which may be never).
    pub fn with_keep_alive(mut self, keep_alive: Option<KeepAlive>) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// The keep-alive, if any.
    pub fn keep_alive(&self) -> Option<KeepAlive> {
        self.keep_alive
    }

    /// The extra window for long links, if any.
    pub fn window_boost(&self) -> Option<WindowBoost> {
        self.window_boost
    }

    /// The most streams open at once.
    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// The connection receive window.
    pub fn max_receive_window(&self) -> usize {
        self.max_receive_window
    }

    /// The largest data frame we send.
    pub fn split_send_size(&self) -> usize {
        self.split_send_size
    }

    /// The inbound backlog.
    pub fn inbound_backlog(&self) -> usize {
        self.inbound_backlog
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_streams == 0 {
            return Err(ConfigError::NoStreams);
        }
        let internal_min = self
            .max_streams
            .checked_add(REAP_SLACK)
            .and_then(|n| n.checked_mul(STREAM_WINDOW))
            .ok_or(ConfigError::TooManyStreams(self.max_streams))?;
        let min = internal_min - REAP_SLACK * STREAM_WINDOW;
        if self.max_receive_window < min {
            return Err(ConfigError::WindowTooSmall {
                window: self.max_receive_window,
                min,
            });
        }
        if self.split_send_size == 0 {
            return Err(ConfigError::ZeroSplitSendSize);
        }
        if self.inbound_backlog == 0 {
            return Err(ConfigError::ZeroBacklog);
        }
        if let Some(boost) = &self.window_boost {
            boost.validate()?;
        }
        if let Some(keep_alive) = &self.keep_alive {
            if keep_alive.idle.is_zero() || keep_alive.timeout.is_zero() {
                return Err(ConfigError::BadKeepAlive);
            }
        }
        Ok(())
    }

    /// The most extra window (beyond the initial 256 KiB per stream) all streams of
    /// a connection may have together.
    pub(crate) fn max_extra_window(&self) -> u64 {
        let initial = self.max_streams.saturating_mul(STREAM_WINDOW);
        let room = self.max_receive_window.saturating_sub(initial) as u64;
        self.window_boost
            .map_or(0, |boost| room.min(boost.max_per_connection as u64))
    }

    /// The `yamux` crate's configuration. Call only on a validated configuration.
    ///
    /// Its connection window is unbounded: yamux's window is room in its buffer,
    /// which it grows (doubling) as its reader keeps up, never credit the remote hears
    /// of. The credit is the tap's, every growth reserved from the budget first, so
    /// what yamux buffers never exceeds it; a yamux window at least as large lets the
    /// bytes pass straight through instead of being held in the tap.
    pub(crate) fn to_yamux(&self) -> yamux::Config {
        let streams = self.max_streams.saturating_add(REAP_SLACK);
        let mut config = yamux::Config::default();
        // Order matters: yamux asserts window >= streams x 256 KiB at every step.
        config.set_max_connection_receive_window(None);
        config.set_max_num_streams(streams);
        config.set_split_send_size(self.split_send_size);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_converts() {
        let config = YamuxConfig::default();
        assert_eq!(config.validate(), Ok(()));
        let _ = config.to_yamux();
    }

    #[test]
    fn rejects_bad_values() {
        let base = YamuxConfig::default;
        assert_eq!(
            base().with_max_streams(0).validate(),
            Err(ConfigError::NoStreams)
        );
        assert_eq!(
            base().with_max_streams(usize::MAX).validate(),
            Err(ConfigError::TooManyStreams(usize::MAX))
        );
        assert_eq!(
            base()
                .with_max_streams(10)
                .with_max_receive_window(1024)
                .validate(),
            Err(ConfigError::WindowTooSmall {
                window: 1024,
                min: 10 * STREAM_WINDOW
            })
        );
        assert_eq!(
            base().with_split_send_size(0).validate(),
            Err(ConfigError::ZeroSplitSendSize)
        );
        assert_eq!(
            base().with_inbound_backlog(0).validate(),
            Err(ConfigError::ZeroBacklog)
        );
        let boost = |per_stream, per_connection| {
            base().with_window_boost(Some(WindowBoost {
                link_rate: 1,
                max_per_stream: per_stream,
                max_per_connection: per_connection,
                growth_factor: 2,
            }))
        };
        let factor = |growth_factor| {
            base().with_window_boost(Some(WindowBoost {
                growth_factor,
                ..WindowBoost::default()
            }))
        };
        assert!(factor(1).validate().is_err());
        assert!(factor(257).validate().is_err());
        let keep_alive = |idle, timeout| {
            base().with_keep_alive(Some(KeepAlive {
                idle: Duration::from_secs(idle),
                timeout: Duration::from_secs(timeout),
            }))
        };
        assert_eq!(keep_alive(0, 1).validate(), Err(ConfigError::BadKeepAlive));
        assert_eq!(keep_alive(1, 0).validate(), Err(ConfigError::BadKeepAlive));
        assert_eq!(keep_alive(1, 1).validate(), Ok(()));
        assert!(boost(0, 1).validate().is_err());
        assert!(boost(1, 0).validate().is_err());
        assert!(boost(WindowBoost::MAX_PER_STREAM + 1, 1)
            .validate()
            .is_err());
        assert_eq!(boost(WindowBoost::MAX_PER_STREAM, 1).validate(), Ok(()));
        assert_eq!(base().with_window_boost(None).validate(), Ok(()));
    }

    #[test]
    fn smallest_valid_window_converts_without_panic() {
        let config = YamuxConfig::default()
            .with_max_streams(3)
            .with_max_receive_window(3 * STREAM_WINDOW);
        assert_eq!(config.validate(), Ok(()));
        let _ = config.to_yamux();
    }
}
