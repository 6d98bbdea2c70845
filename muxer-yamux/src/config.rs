//! The knobs of the yamux muxer, checked before use.

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
    /// and at most 1 GiB per stream.
    #[error(
        "window boost: max_per_stream must be 1..=1 GiB and max_per_connection at least 1 \
         (got {per_stream} and {per_connection})"
    )]
    BadBoost {
        /// The configured most extra window per stream.
        per_stream: u32,
        /// The configured most extra window per connection.
        per_connection: usize,
    },
}

/// Extra receive window that lets one stream fill a long link from its first round
/// trip.
///
/// The `yamux` crate starts every stream at the spec's 256 KiB window and doubles it
/// at most once per round trip, so on a 60 ms path a stream needs about ten round
/// trips before its window matches the bandwidth-delay product. With a boost, weft
/// measures the connection's round-trip time (from yamux's own pings) and grants
/// every stream, in one window update, `rtt x link_rate` more bytes, capped per
/// stream and per connection. Bytes the remote sends beyond what yamux itself has
/// granted wait in the muxer until the application reads; they never exceed the
/// extra window granted (a peer that sends more breaks flow control, and the
/// connection fails). On a fast local link the product is small and nothing
/// extra is granted: a grant below 256 KiB is never sent.
///
/// The peer sees only standard yamux window updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBoost {
    /// The rate, in bytes per second, a stream should reach on a long link: the extra
    /// window is this times the round-trip time.
    pub link_rate: u64,
    /// The most extra window one stream gets.
    pub max_per_stream: u32,
    /// The most extra window all streams of one connection get together: the bound
    /// on what a connection can make us hold on top of yamux's own buffers.
    pub max_per_connection: usize,
}

impl Default for WindowBoost {
    /// 1 GiB/s (about 8.6 Gbit/s), at most 64 MiB per stream and 256 MiB per
    /// connection: a 60 ms path gets a 60 MiB window at once.
    fn default() -> Self {
        WindowBoost {
            link_rate: 1 << 30,
            max_per_stream: 64 << 20,
            max_per_connection: 256 << 20,
        }
    }
}

impl WindowBoost {
    /// The largest `max_per_stream` accepted.
    pub const MAX_PER_STREAM: u32 = 1 << 30;

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_per_stream == 0
            || self.max_per_stream > Self::MAX_PER_STREAM
            || self.max_per_connection == 0
        {
            return Err(ConfigError::BadBoost {
                per_stream: self.max_per_stream,
                per_connection: self.max_per_connection,
            });
        }
        Ok(())
    }
}

/// Configuration of the yamux muxer.
///
/// Defaults: 512 streams; 64 KiB data frames, the largest go-yamux and js-libp2p's
/// yamux send (the `yamux` crate and rust-libp2p send 16 KiB: every frame is a
/// command to the connection task and a wake-up, and with 16 KiB frames those cost
/// a quarter of single-stream throughput end to end; see BENCHMARKS.md); a 512 MiB
/// connection receive window (half of `yamux`'s 1 GiB: the bound on what one
/// connection can make us buffer); a backlog of 256 inbound streams not yet accepted
/// (the spec's ACK backlog); and the default [`WindowBoost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamuxConfig {
    pub(crate) max_streams: usize,
    pub(crate) max_receive_window: usize,
    pub(crate) split_send_size: usize,
    pub(crate) inbound_backlog: usize,
    pub(crate) window_boost: Option<WindowBoost>,
}

impl Default for YamuxConfig {
    fn default() -> Self {
        YamuxConfig {
            max_streams: 512,
            max_receive_window: 512 * 1024 * 1024,
            split_send_size: 64 * 1024,
            inbound_backlog: 256,
            window_boost: Some(WindowBoost::default()),
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
    /// 256 KiB window that grows (auto-tuning) with its throughput, up to this total.
    /// Must be at least 256 KiB x `max_streams`.
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

    /// Sets the extra window for long links, or `None` to use only the `yamux`
    /// crate's own window tuning.
    pub fn with_window_boost(mut self, boost: Option<WindowBoost>) -> Self {
        self.window_boost = boost;
        self
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
        Ok(())
    }

    /// The `yamux` crate's configuration. Call only on a validated configuration.
    pub(crate) fn to_yamux(&self) -> yamux::Config {
        let streams = self.max_streams.saturating_add(REAP_SLACK);
        let window = self
            .max_receive_window
            .max(streams.saturating_mul(STREAM_WINDOW));
        let mut config = yamux::Config::default();
        // Order matters: yamux asserts window >= streams x 256 KiB at every step.
        config.set_max_connection_receive_window(None);
        config.set_max_num_streams(streams);
        config.set_max_connection_receive_window(Some(window));
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
            }))
        };
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
