//! The yamux stream multiplexer (`/yamux/1.0.0`) behind weft's muxer trait.
//!
//! [`Yamux`] implements [`weft_upgrader::StreamMuxer`] on top of the `yamux` crate
//! (0.14). [`StreamMuxer::upgrade`] returns a handle and a driver future; spawn the
//! driver on your runtime, it owns the connection and does all the I/O:
//!
//! - `open_stream` and `close` are requests to the driver over a channel, answered
//!   through a oneshot; `accept_stream` takes streams from a bounded backlog
//!   ([`YamuxConfig::with_inbound_backlog`], 256 by default). When the backlog is full,
//!   or the stream limit is reached, a new inbound stream is reset. A `yamux` 0.14
//!   remote stops opening streams by itself once 256 of them wait for our ACK, and
//!   we only acknowledge a stream once the application reads or writes it.
//! - Backpressure is yamux's flow control: each stream has a 256 KiB window that the
//!   reader refills by reading. The `yamux` crate's own auto-tuning is pinned; a
//!   stream earns more window only as its application drains it ([`WindowBoost`], on
//!   by default), capped for the whole connection
//!   ([`YamuxConfig::with_max_receive_window`]). A reader that stops reading stops
//!   its sender after at most its window: 256 KiB for a stream that was never read.
//! - [`StreamMuxer::upgrade_with_budget`] charges what the remote makes the
//!   connection buffer to a [`Budget`]: unread bytes as they arrive (at
//!   [`HELD_PRIORITY`]), window growth before it is granted (at [`GROWTH_PRIORITY`]).
//!   A denied growth leaves the stream at its window; a denied unread byte resets the
//!   stream of the connection holding the most ([`YamuxStats::streams_shed`]).
//! - A [`KeepAlive`] (on by default) notices a dead link: its own pings after a
//!   silence, and the connection fails when nothing answers.
//! - [`Role::Initiator`](weft_upgrader::Role) is the yamux client (odd stream ids).
//!
//! # How streams end
//!
//! Reads return EOF only when the remote half-closed the stream (FIN). A stream reset
//! by the remote fails with [`std::io::ErrorKind::ConnectionReset`], and a stream cut
//! by the end of its connection (close by either side, go-away, I/O failure) with
//! [`std::io::ErrorKind::ConnectionAborted`]. The `yamux` crate reports all of these
//! as EOF; this crate tells them apart by following the frame headers on the socket
//! (see `tap.rs`).
//!
//! The end of a connection wakes every task blocked reading or writing one of its
//! streams, however it ended: the remote's close or go-away, an I/O failure, our own
//! [`close`](weft_upgrader::MuxedConnection::close), or the driver future dropped
//! (even in the middle of a close). When the remote closed or the connection failed,
//! a stream first returns the data it had already received, then the error. After our
//! own close, `yamux` 0.14 no longer lets a stream read what it had buffered (its
//! `poll_read` first needs the stream's command channel, which the close shuts), so
//! reads on our side fail at once, losing data received but not yet read.
//!
//! `MuxedStream::reset` sends RST whatever the stream's state (yamux itself sends it
//! only when a stream is dropped with both directions open). Dropping a stream
//! without closing or resetting it does what `yamux` does: RST if both directions are
//! open, FIN if the remote had finished, nothing if we had half-closed.
//!
//! # Example
//!
//! ```no_run
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! use weft_muxer_yamux::Yamux;
//! use weft_upgrader::{BoxedIo, Role, StreamMuxer};
//!
//! # async fn example(io: BoxedIo) -> Result<(), Box<dyn std::error::Error>> {
//! let muxed = Yamux::new().upgrade(io, Role::Initiator)?;
//! let driver = muxed.driver; // spawn this on your runtime, e.g. tokio::spawn(driver)
//! # drop(driver);
//! let mut stream = muxed.connection.open_stream().await?;
//! stream.write_all(b"ping").await?;
//! stream.close().await?; // half-close: we keep reading
//! let mut answer = Vec::new();
//! stream.read_to_end(&mut answer).await?;
//! muxed.connection.close().await?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod boost;
mod config;
mod connection;
mod driver;
mod frame_scan;
mod keepalive;
mod shared;
mod stats;
mod stream;
mod tap;

pub use boost::{GROWTH_PRIORITY, HELD_CAP_BESIDE_GROWTH, HELD_FLOOR, HELD_PRIORITY};
pub use config::{ConfigError, KeepAlive, WindowBoost, YamuxConfig, STREAM_WINDOW};
pub use stats::YamuxStats;

use connection::YamuxConnection;
use driver::Driver;
use futures::channel::mpsc;
use futures::FutureExt;
use shared::Shared;
use std::sync::Arc;
use tap::Tap;
use weft_upgrader::{BoxedIo, Budget, Muxed, MuxerError, Role, StreamMuxer};

/// The multistream-select protocol id of yamux.
pub const PROTOCOL_ID: &str = "/yamux/1.0.0";

/// Outstanding open/close requests a connection's driver queues.
const COMMAND_QUEUE: usize = 32;

/// The yamux stream multiplexer, `/yamux/1.0.0`.
///
/// Clones share one [`YamuxStats`].
#[derive(Debug, Clone, Default)]
pub struct Yamux {
    config: YamuxConfig,
    stats: YamuxStats,
}

impl Yamux {
    /// Yamux with the default [`YamuxConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Yamux with `config`, if it is valid.
    pub fn with_config(config: YamuxConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Yamux {
            config,
            stats: YamuxStats::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &YamuxConfig {
        &self.config
    }

    /// What the connections this muxer (and its clones) upgraded did to protect
    /// themselves: streams shed, windows grown, dead links.
    pub fn stats(&self) -> &YamuxStats {
        &self.stats
    }
}

impl StreamMuxer for Yamux {
    fn protocol_id(&self) -> &str {
        PROTOCOL_ID
    }

    /// [`upgrade_with_budget`](StreamMuxer::upgrade_with_budget) with an unlimited
    /// budget.
    fn upgrade(&self, io: BoxedIo, role: Role) -> Result<Muxed, MuxerError> {
        self.upgrade_with_budget(io, role, Budget::unlimited())
    }

    fn upgrade_with_budget(
        &self,
        io: BoxedIo,
        role: Role,
        budget: Budget,
    ) -> Result<Muxed, MuxerError> {
        let mode = match role {
            Role::Initiator => yamux::Mode::Client,
            Role::Responder => yamux::Mode::Server,
        };
        tracing::debug!(?mode, "starting yamux connection");
        let shared = Arc::new(Shared::default());
        let boost = boost::Boost::new(
            self.config.window_boost,
            self.config.max_extra_window(),
            budget,
            self.stats.clone(),
        );
        let io = Tap::new(
            io,
            shared.clone(),
            boost,
            self.config.keep_alive,
            self.stats.clone(),
        );
        let connection = yamux::Connection::new(io, self.config.to_yamux(), mode);
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        // A futures channel holds `buffer + senders` items; we have one sender.
        let (inbound_tx, inbound_rx) = mpsc::channel(self.config.inbound_backlog.saturating_sub(1));
        let driver = Driver::new(
            connection,
            shared.clone(),
            self.config.max_streams,
            command_rx,
            inbound_tx,
        );
        Ok(Muxed {
            connection: Arc::new(YamuxConnection::new(command_tx, inbound_rx, shared)),
            driver: driver.run().boxed(),
        })
    }
}

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
