//! A synchronous observer of what the host does, for metrics (feature `metrics-hook`).
//!
//! The lifecycle events of [`Host::subscribe`](crate::Host::subscribe) go out on a
//! bounded broadcast channel that drops events for a subscriber that falls behind, so
//! counters built on them drift. An [`Observer`] is called instead, synchronously, at
//! the moment something happens: a connection opened or closed, a dial attempt or an
//! inbound handshake failed, a stream was negotiated or dropped, identify or ping
//! finished. Its methods must not block or wait (they run on the host's tasks, some on
//! the data path): count, and return.
//!
//! Bytes are counted by the [`StreamMeter`] that [`Observer::stream_opened`] returns:
//! the stream calls it after each successful read or write.
//!
//! # Why a cargo feature
//!
//! Without `metrics-hook`, none of this exists: the host's internal hook points are
//! empty inline functions over a zero-sized type, and a stream carries no meter, so a
//! host built without the feature pays nothing (no branch, no pointer per stream, no
//! call per read). With it, a host without an observer pays one `Option` check per
//! event and per read or write.

#[cfg(feature = "metrics-hook")]
use crate::conn::ConnState;
#[cfg(feature = "metrics-hook")]
pub use api::*;
#[cfg(feature = "metrics-hook")]
use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "metrics-hook")]
mod api {
    use crate::conn::ConnectionInfo;
    use crate::error::DialError;
    use std::sync::Arc;
    use std::time::Duration;
    use weft_connmgr::Direction;
    use weft_upgrader::UpgradeError;

    /// Told synchronously about what the host does. Every method has an empty default,
    /// so an implementation picks what it counts. Implementations must return quickly
    /// and never block: they run on the host's tasks.
    pub trait Observer: Send + Sync + 'static {
        /// A connection finished its upgrade and was registered, `established_in` after
        /// the dial attempt started or the transport accepted it.
        fn connection_opened(&self, connection: &ConnectionInfo, established_in: Duration) {
            let _ = (connection, established_in);
        }

        /// A connection that [`connection_opened`](Self::connection_opened) reported
        /// has closed.
        fn connection_closed(&self, connection: &ConnectionInfo) {
            let _ = connection;
        }

        /// One dial attempt failed (each address of a multi-address dial on its own),
        /// or a dial failed before any attempt (no address) or as a whole (its overall
        /// timeout). Attempts cancelled because another address won are not failures.
        fn dial_failed(&self, error: &DialError) {
            let _ = error;
        }

        /// An inbound connection was refused before its handshake (a connection policy
        /// or resource limit) or right after it (the policy, the peer's scope).
        fn inbound_refused(&self, error: &DialError) {
            let _ = error;
        }

        /// An inbound connection's upgrade failed; [`UpgradeError::step`] says where.
        fn inbound_upgrade_failed(&self, error: &UpgradeError) {
            let _ = error;
        }

        /// A pending inbound handshake was evicted to make room for a newcomer.
        fn inbound_evicted(&self) {}

        /// A stream's protocol was negotiated. The meter returned, if any, counts its
        /// bytes and is told when the stream closes.
        fn stream_opened(&self, stream: &StreamInfo<'_>) -> Option<Arc<dyn StreamMeter>> {
            let _ = stream;
            None
        }

        /// An inbound stream was dropped before a protocol was agreed (no handler, over
        /// a slot or a limit, a malformed or timed-out negotiation).
        fn inbound_stream_refused(&self) {}

        /// An identify exchange ended: `push` for an identify push we received (else
        /// our request after connecting), `ok` whether a well-formed message arrived in
        /// time.
        fn identify_received(&self, push: bool, ok: bool) {
            let _ = (push, ok);
        }

        /// An outbound ping ended: its round-trip time, or `None` if it failed.
        fn ping(&self, rtt: Option<Duration>) {
            let _ = rtt;
        }
    }

    /// A negotiated stream, as [`Observer::stream_opened`] sees it.
    #[derive(Debug, Clone, Copy)]
    #[non_exhaustive]
    pub struct StreamInfo<'a> {
        /// The negotiated protocol id (chosen by the remote among what a handler
        /// accepts, or among our proposals): not a bounded label on its own.
        pub protocol: &'a str,
        /// The registration key of the handler serving this id, if one is registered:
        /// the exact id, or the name a match function was registered under.
        pub handler: Option<&'a str>,
        /// Who opened the stream.
        pub direction: Direction,
    }

    impl<'a> StreamInfo<'a> {
        /// A stream of `protocol`, served by `handler`, opened in `direction`.
        pub fn new(protocol: &'a str, handler: Option<&'a str>, direction: Direction) -> Self {
            StreamInfo {
                protocol,
                handler,
                direction,
            }
        }
    }

    /// Counts one stream's bytes. Called from the stream's `poll_read` and
    /// `poll_write`: it must only count (an atomic add), never block.
    pub trait StreamMeter: Send + Sync + 'static {
        /// `bytes` were written to the stream.
        fn sent(&self, bytes: usize);
        /// `bytes` were read from the stream.
        fn received(&self, bytes: usize);
        /// The stream was dropped.
        fn closed(&self);
    }
}

/// The host's hook points: with `metrics-hook`, an optional [`Observer`]; without it,
/// nothing at all.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    #[cfg(feature = "metrics-hook")]
    observer: Option<Arc<dyn Observer>>,
}

/// What a stream carries to count its bytes.
#[cfg(feature = "metrics-hook")]
pub(crate) type Meter = Option<Arc<dyn StreamMeter>>;
/// What a stream carries to count its bytes: nothing without `metrics-hook`.
#[cfg(not(feature = "metrics-hook"))]
pub(crate) type Meter = ();

#[cfg(feature = "metrics-hook")]
impl Hooks {
    pub(crate) fn new(observer: Option<Arc<dyn Observer>>) -> Self {
        Hooks { observer }
    }

    pub(crate) fn connection_opened(&self, conn: &ConnState, started: Instant) {
        if let Some(o) = &self.observer {
            o.connection_opened(&conn.info(), started.elapsed());
        }
    }

    pub(crate) fn connection_closed(&self, conn: &ConnState) {
        if let Some(o) = &self.observer {
            o.connection_closed(&conn.info());
        }
    }

    pub(crate) fn dial_failed(&self, error: &crate::DialError) {
        if let Some(o) = &self.observer {
            o.dial_failed(error);
        }
    }

    pub(crate) fn inbound_refused(&self, error: &crate::DialError) {
        if let Some(o) = &self.observer {
            o.inbound_refused(error);
        }
    }

    pub(crate) fn inbound_upgrade_failed(&self, error: &weft_upgrader::UpgradeError) {
        if let Some(o) = &self.observer {
            o.inbound_upgrade_failed(error);
        }
    }

    pub(crate) fn inbound_evicted(&self) {
        if let Some(o) = &self.observer {
            o.inbound_evicted();
        }
    }

    /// The meter of a stream of `protocol`; `handler` looks up the registration key
    /// (only called when there is an observer).
    pub(crate) fn stream_opened(
        &self,
        protocol: &str,
        handler: impl FnOnce() -> Option<String>,
        direction: weft_connmgr::Direction,
    ) -> Meter {
        let o = self.observer.as_ref()?;
        let key = handler();
        o.stream_opened(&StreamInfo::new(protocol, key.as_deref(), direction))
    }

    pub(crate) fn inbound_stream_refused(&self) {
        if let Some(o) = &self.observer {
            o.inbound_stream_refused();
        }
    }

    pub(crate) fn identify_received(&self, push: bool, ok: bool) {
        if let Some(o) = &self.observer {
            o.identify_received(push, ok);
        }
    }

    pub(crate) fn ping(&self, rtt: Option<std::time::Duration>) {
        if let Some(o) = &self.observer {
            o.ping(rtt);
        }
    }
}

#[cfg(not(feature = "metrics-hook"))]
impl Hooks {
    #[inline(always)]
    pub(crate) fn connection_opened(&self, _: &crate::conn::ConnState, _: Instant) {}
    #[inline(always)]
    pub(crate) fn connection_closed(&self, _: &crate::conn::ConnState) {}
    #[inline(always)]
    pub(crate) fn dial_failed(&self, _: &crate::DialError) {}
    #[inline(always)]
    pub(crate) fn inbound_refused(&self, _: &crate::DialError) {}
    #[inline(always)]
    pub(crate) fn inbound_upgrade_failed(&self, _: &weft_upgrader::UpgradeError) {}
    #[inline(always)]
    pub(crate) fn inbound_evicted(&self) {}
    #[inline(always)]
    pub(crate) fn stream_opened(
        &self,
        _: &str,
        _: impl FnOnce() -> Option<String>,
        _: weft_connmgr::Direction,
    ) -> Meter {
    }
    #[inline(always)]
    pub(crate) fn inbound_stream_refused(&self) {}
    #[inline(always)]
    pub(crate) fn identify_received(&self, _: bool, _: bool) {}
    #[inline(always)]
    pub(crate) fn ping(&self, _: Option<std::time::Duration>) {}
}

/// Counts `n` bytes written on a stream's meter.
#[inline(always)]
pub(crate) fn count_sent(meter: &Meter, n: usize) {
    #[cfg(feature = "metrics-hook")]
    if let Some(m) = meter {
        m.sent(n);
    }
    #[cfg(not(feature = "metrics-hook"))]
    let _ = (meter, n);
}

/// Counts `n` bytes read on a stream's meter.
#[inline(always)]
pub(crate) fn count_received(meter: &Meter, n: usize) {
    #[cfg(feature = "metrics-hook")]
    if let Some(m) = meter {
        m.received(n);
    }
    #[cfg(not(feature = "metrics-hook"))]
    let _ = (meter, n);
}

/// Tells a stream's meter that the stream closed.
#[inline(always)]
pub(crate) fn meter_closed(meter: &Meter) {
    #[cfg(feature = "metrics-hook")]
    if let Some(m) = meter {
        m.closed();
    }
    #[cfg(not(feature = "metrics-hook"))]
    let _ = meter;
}
