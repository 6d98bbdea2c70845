//! State shared by the driver, the connection handle, the streams and the I/O tap.

use crate::frame_scan::{FrameHeader, FLAG_FIN, FLAG_RST, FLAG_SYN, TYPE_GO_AWAY};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

/// What the remote has told us about one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamSignals {
    /// The remote half-closed the stream (FIN): its data ended cleanly.
    pub(crate) fin: bool,
    /// The remote reset the stream (RST).
    pub(crate) rst: bool,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// We closed it.
    Local,
    /// The remote closed it (go-away or end of the byte stream).
    Remote,
    /// It failed; the text says why.
    Failed(String),
}

#[derive(Debug, Default)]
struct Guarded {
    /// Signals of the streams we hold, by stream id.
    streams: HashMap<u32, StreamSignals>,
    /// Stream ids whose RST frame still has to be written.
    pending_resets: VecDeque<u32>,
    /// Wakes the driver (to write a pending reset).
    driver_waker: Option<Waker>,
    /// Set once the connection ended.
    end: Option<End>,
}

/// Connection-wide state. Locks are held for a few instructions, never across `.await`.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    guarded: Mutex<Guarded>,
    /// Streams alive on our side (opened, accepted or waiting in the inbound backlog).
    live_streams: AtomicUsize,
    /// We asked to close, or the connection ended.
    closed: AtomicBool,
    /// The remote sent a go-away or closed the connection.
    remote_went_away: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Guarded> {
        self.guarded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an inbound frame header, as read from the socket.
    pub(crate) fn on_inbound_header(&self, header: FrameHeader) {
        if header.frame_type == TYPE_GO_AWAY {
            tracing::debug!(code = header.length, "remote sent go-away");
            self.remote_went_away.store(true, Ordering::Release);
            return;
        }
        if !(header.has(FLAG_FIN) || header.has(FLAG_RST) || header.has(FLAG_SYN)) {
            return;
        }
        let mut guarded = self.lock();
        // A SYN announces a stream yamux is about to hand us; other frames only matter
        // for streams we already track.
        let entry = if header.has(FLAG_SYN) {
            Some(guarded.streams.entry(header.stream_id).or_default())
        } else {
            guarded.streams.get_mut(&header.stream_id)
        };
        if let Some(signals) = entry {
            signals.fin |= header.has(FLAG_FIN);
            signals.rst |= header.has(FLAG_RST);
        }
    }

    /// Starts tracking an outbound stream.
    pub(crate) fn track(&self, stream_id: u32) {
        self.lock().streams.entry(stream_id).or_default();
    }

    /// Stops tracking a stream (dropped).
    pub(crate) fn forget(&self, stream_id: u32) {
        self.lock().streams.remove(&stream_id);
    }

    /// What the remote said about `stream_id`.
    pub(crate) fn signals(&self, stream_id: u32) -> StreamSignals {
        self.lock()
            .streams
            .get(&stream_id)
            .copied()
            .unwrap_or_default()
    }

    /// Queues an RST frame for `stream_id` and wakes the driver to write it.
    pub(crate) fn queue_reset(&self, stream_id: u32) {
        let waker = {
            let mut guarded = self.lock();
            guarded.pending_resets.push_back(stream_id);
            guarded.driver_waker.clone()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes the next RST frame to write, if any.
    pub(crate) fn next_reset(&self) -> Option<u32> {
        self.lock().pending_resets.pop_front()
    }

    /// Remembers the driver's waker.
    pub(crate) fn register_driver(&self, waker: &Waker) {
        let mut guarded = self.lock();
        match &guarded.driver_waker {
            Some(known) if known.will_wake(waker) => {}
            _ => guarded.driver_waker = Some(waker.clone()),
        }
    }

    /// Records how the connection ended (the first reason wins).
    pub(crate) fn set_end(&self, end: End) {
        self.closed.store(true, Ordering::Release);
        if end == End::Remote {
            self.remote_went_away.store(true, Ordering::Release);
        }
        let mut guarded = self.lock();
        guarded.end.get_or_insert(end);
        guarded.pending_resets.clear();
    }

    /// How the connection ended, if it did.
    pub(crate) fn end(&self) -> Option<End> {
        self.lock().end.clone()
    }

    /// Marks the connection as closing (by us).
    pub(crate) fn mark_closing(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether the connection is closed or closing.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the remote went away.
    pub(crate) fn remote_went_away(&self) -> bool {
        self.remote_went_away.load(Ordering::Acquire)
    }

    /// Number of live streams.
    pub(crate) fn live_streams(&self) -> usize {
        self.live_streams.load(Ordering::Acquire)
    }

    /// Counts one more live stream.
    pub(crate) fn stream_opened(&self) {
        self.live_streams.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one live stream less.
    pub(crate) fn stream_dropped(&self) {
        self.live_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_scan::TYPE_DATA;

    fn header(flags: u16, stream_id: u32) -> FrameHeader {
        FrameHeader {
            frame_type: TYPE_DATA,
            flags,
            stream_id,
            length: 0,
        }
    }

    #[test]
    fn records_only_tracked_or_new_streams() {
        let shared = Shared::default();
        shared.on_inbound_header(header(FLAG_FIN, 7));
        assert_eq!(shared.signals(7), StreamSignals::default());
        shared.on_inbound_header(header(FLAG_SYN, 7));
        shared.on_inbound_header(header(FLAG_FIN, 7));
        assert!(shared.signals(7).fin);
        shared.track(9);
        shared.on_inbound_header(header(FLAG_RST, 9));
        assert!(shared.signals(9).rst);
        shared.forget(9);
        assert_eq!(shared.signals(9), StreamSignals::default());
    }

    #[test]
    fn go_away_is_remembered() {
        let shared = Shared::default();
        assert!(!shared.remote_went_away());
        shared.on_inbound_header(FrameHeader {
            frame_type: TYPE_GO_AWAY,
            flags: 0,
            stream_id: 0,
            length: 0,
        });
        assert!(shared.remote_went_away());
    }
}
