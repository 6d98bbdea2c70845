//! State shared by the driver, the connection handle, the streams and the I/O tap.

use crate::frame_scan::{
    FrameHeader, FLAG_FIN, FLAG_RST, FLAG_SYN, TYPE_DATA, TYPE_GO_AWAY, TYPE_WINDOW_UPDATE,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

/// What the remote has told us about one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamSignals {
    /// The remote half-closed the stream (FIN): its data ended cleanly.
    pub(crate) fin: bool,
    /// The remote reset the stream (RST), or we did because the memory budget was
    /// full (then `shed` is set too).
    pub(crate) rst: bool,
    /// We reset the stream because the connection's memory budget was full and it
    /// held the most unread bytes.
    pub(crate) shed: bool,
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

/// Which side of a stream a task waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `poll_read`.
    Read,
    /// `poll_write`, `poll_flush` or `poll_close`.
    Write,
}

/// What we keep about one stream we hold.
#[derive(Debug, Default)]
struct StreamEntry {
    signals: StreamSignals,
    /// The task last left waiting in `poll_read`, woken when the connection ends.
    reader: Option<Waker>,
    /// The task last left waiting to write, woken when the connection ends.
    writer: Option<Waker>,
}

#[derive(Debug, Default)]
struct Guarded {
    /// The streams we hold, by stream id; an entry goes when its stream is dropped.
    streams: HashMap<u32, StreamEntry>,
    /// Stream ids whose RST frame still has to be written.
    pending_resets: VecDeque<u32>,
    /// Wakes the driver (to write a pending reset).
    driver_waker: Option<Waker>,
    /// Streams dropped on our side that the tap's window boost has not yet heard of
    /// (collected only while a boost is on).
    dropped: Vec<u32>,
    /// Bytes the application read, by stream, that the tap has not yet heard of.
    consumed: Vec<(u32, u64)>,
    /// Bytes in `consumed` since the driver was last woken for them.
    consumed_unsignalled: u64,
    /// Set once the connection ended.
    end: Option<End>,
}

/// Reads that add up to this much wake the driver, so that the tap gives the remote
/// its credit back even while nothing else happens on the connection. Below it the
/// remote still has most of its window (see the boost's refill batches).
const WAKE_AFTER_CONSUMED: u64 = 32 * 1024;

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
    /// Whether dropped stream ids are collected for the tap.
    collect_dropped: AtomicBool,
    /// Whether `Guarded::dropped` is non-empty.
    has_dropped: AtomicBool,
    /// Whether any stream was shed for the budget.
    any_shed: AtomicBool,
    /// Whether `Guarded::consumed` is non-empty.
    has_consumed: AtomicBool,
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
        // A SYN on a data or window-update frame announces a stream yamux is about to
        // hand us (or, if the SYN is invalid, kill the connection for); other frames
        // only matter for streams we already track. yamux ignores the flags of a ping,
        // so a ping's SYN must not create an entry that no stream would ever remove.
        let opens = header.has(FLAG_SYN)
            && (header.frame_type == TYPE_DATA || header.frame_type == TYPE_WINDOW_UPDATE);
        let entry = if opens {
            Some(guarded.streams.entry(header.stream_id).or_default())
        } else {
            guarded.streams.get_mut(&header.stream_id)
        };
        if let Some(entry) = entry {
            entry.signals.fin |= header.has(FLAG_FIN);
            entry.signals.rst |= header.has(FLAG_RST);
        }
    }

    /// Starts tracking an outbound stream.
    pub(crate) fn track(&self, stream_id: u32) {
        self.lock().streams.entry(stream_id).or_default();
    }

    /// Stops tracking a stream (dropped).
    pub(crate) fn forget(&self, stream_id: u32) {
        let waker = {
            let mut guarded = self.lock();
            guarded.streams.remove(&stream_id);
            Self::push_dropped(
                &mut guarded,
                &self.collect_dropped,
                &self.has_dropped,
                stream_id,
            )
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The application gave up yamux's stream (a reset) but keeps our handle: the
    /// tap may give back what it holds for it.
    pub(crate) fn released(&self, stream_id: u32) {
        let waker = {
            let mut guarded = self.lock();
            Self::push_dropped(
                &mut guarded,
                &self.collect_dropped,
                &self.has_dropped,
                stream_id,
            )
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Records a dropped stream for the tap; returns the driver's waker to wake.
    fn push_dropped(
        guarded: &mut Guarded,
        collect: &AtomicBool,
        has_dropped: &AtomicBool,
        stream_id: u32,
    ) -> Option<Waker> {
        if !collect.load(Ordering::Relaxed) {
            return None;
        }
        guarded.dropped.push(stream_id);
        has_dropped.store(true, Ordering::Release);
        guarded.driver_waker.clone()
    }

    /// Marks `stream_id` as reset by us for the memory budget.
    pub(crate) fn mark_shed(&self, stream_id: u32) {
        self.any_shed.store(true, Ordering::Release);
        if let Some(entry) = self.lock().streams.get_mut(&stream_id) {
            entry.signals.shed = true;
            entry.signals.rst = true;
        }
    }

    /// Starts collecting the ids of dropped streams for [`Shared::take_dropped`].
    pub(crate) fn collect_dropped(&self) {
        self.collect_dropped.store(true, Ordering::Relaxed);
    }

    /// Takes the ids of the streams dropped since the last call (cheap when none).
    pub(crate) fn take_dropped(&self) -> Vec<u32> {
        if !self.has_dropped.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut self.lock().dropped)
    }

    /// Records that the application read `bytes` from `stream_id`; wakes the driver
    /// once enough reads added up.
    pub(crate) fn report_consumed(&self, stream_id: u32, bytes: usize) {
        let bytes = bytes as u64;
        let waker = {
            let mut guarded = self.lock();
            match guarded.consumed.last_mut() {
                Some((id, total)) if *id == stream_id => *total += bytes,
                _ => guarded.consumed.push((stream_id, bytes)),
            }
            self.has_consumed.store(true, Ordering::Release);
            guarded.consumed_unsignalled += bytes;
            if guarded.consumed_unsignalled >= WAKE_AFTER_CONSUMED {
                guarded.consumed_unsignalled = 0;
                guarded.driver_waker.clone()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes the reads recorded since the last call (cheap when none).
    pub(crate) fn take_consumed(&self) -> Vec<(u32, u64)> {
        if !self.has_consumed.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        let mut guarded = self.lock();
        guarded.consumed_unsignalled = 0;
        std::mem::take(&mut guarded.consumed)
    }

    /// Whether `stream_id` was shed for the budget (cheap while none was).
    pub(crate) fn is_shed(&self, stream_id: u32) -> bool {
        self.any_shed.load(Ordering::Acquire) && self.signals(stream_id).shed
    }

    /// What the remote said about `stream_id`.
    pub(crate) fn signals(&self, stream_id: u32) -> StreamSignals {
        self.lock()
            .streams
            .get(&stream_id)
            .map(|entry| entry.signals)
            .unwrap_or_default()
    }

    /// Remembers that a task waits on `direction` of `stream_id`, to wake it when the
    /// connection ends. Returns `false`, storing nothing, if it already ended: the
    /// check and the store happen under the lock [`Shared::set_end`] takes, so a
    /// wake-up is never lost.
    pub(crate) fn register_waiter(
        &self,
        stream_id: u32,
        direction: Direction,
        waker: &Waker,
    ) -> bool {
        let mut guarded = self.lock();
        if guarded.end.is_some() {
            return false;
        }
        let entry = guarded.streams.entry(stream_id).or_default();
        let slot = match direction {
            Direction::Read => &mut entry.reader,
            Direction::Write => &mut entry.writer,
        };
        match slot {
            Some(known) if known.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        true
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

    /// Records how the connection ended (the first reason wins) and wakes every task
    /// waiting on one of its streams: the `yamux` crate does not wake them when the
    /// connection is closed or dropped mid-close.
    pub(crate) fn set_end(&self, end: End) {
        self.closed.store(true, Ordering::Release);
        if end == End::Remote {
            self.remote_went_away.store(true, Ordering::Release);
        }
        let waiters: Vec<Waker> = {
            let mut guarded = self.lock();
            guarded.end.get_or_insert(end);
            guarded.pending_resets.clear();
            guarded
                .streams
                .values_mut()
                .flat_map(|entry| [entry.reader.take(), entry.writer.take()])
                .flatten()
                .collect()
        };
        tracing::trace!(
            waiters = waiters.len(),
            "waking the streams of an ended connection"
        );
        for waker in waiters {
            waker.wake();
        }
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
    use crate::frame_scan::TYPE_PING;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counter {
        fn waker() -> (Arc<Counter>, Waker) {
            let counter = Arc::new(Counter::default());
            (counter.clone(), Waker::from(counter))
        }

        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

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
    fn a_ping_with_syn_tracks_nothing() {
        let shared = Shared::default();
        for id in 1..100 {
            shared.on_inbound_header(FrameHeader {
                frame_type: TYPE_PING,
                flags: FLAG_SYN,
                stream_id: id,
                length: 0,
            });
        }
        assert!(shared.lock().streams.is_empty());
        shared.on_inbound_header(FrameHeader {
            frame_type: TYPE_WINDOW_UPDATE,
            flags: FLAG_SYN,
            stream_id: 2,
            length: 0,
        });
        assert_eq!(shared.lock().streams.len(), 1);
    }

    #[test]
    fn the_end_wakes_every_waiting_task_once() {
        let shared = Shared::default();
        let (reader, reader_waker) = Counter::waker();
        let (writer, writer_waker) = Counter::waker();
        let (other, other_waker) = Counter::waker();
        shared.track(1);
        shared.track(3);
        assert!(shared.register_waiter(1, Direction::Read, &reader_waker));
        assert!(shared.register_waiter(1, Direction::Read, &reader_waker));
        assert!(shared.register_waiter(1, Direction::Write, &writer_waker));
        assert!(shared.register_waiter(3, Direction::Read, &other_waker));
        shared.set_end(End::Local);
        assert_eq!((reader.count(), writer.count(), other.count()), (1, 1, 1));
        // A task arriving after the end is told so instead of being stored.
        assert!(!shared.register_waiter(1, Direction::Read, &reader_waker));
        shared.set_end(End::Remote);
        assert_eq!((reader.count(), writer.count(), other.count()), (1, 1, 1));
        assert_eq!(shared.end(), Some(End::Local));
    }

    #[test]
    fn a_dropped_stream_takes_its_wakers_along() {
        let shared = Shared::default();
        let (reader, reader_waker) = Counter::waker();
        shared.track(5);
        assert!(shared.register_waiter(5, Direction::Read, &reader_waker));
        shared.forget(5);
        assert!(shared.lock().streams.is_empty());
        shared.set_end(End::Failed("gone".to_owned()));
        assert_eq!(reader.count(), 0);
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
