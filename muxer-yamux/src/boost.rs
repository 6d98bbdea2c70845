//! Receive flow control beside the `yamux` crate: the remote's credit decided here,
//! window growth earned by reading, every buffered byte charged to the memory
//! budget, and the bytes that outrun yamux's own window held until it has room.
//!
//! [`Boost`] is a pure state machine with the clock passed in; the
//! [`Tap`](crate::tap::Tap) feeds it every frame header that goes by, the bytes the
//! application read from each stream, and does the I/O. Per stream it keeps the
//! credit the remote has (256 KiB at the start, plus every window update the tap
//! writes, minus every data byte received), which is the only credit the remote ever
//! hears of: the tap takes yamux's own window updates off the wire. yamux's window
//! is mirrored too (its updates, minus the bytes handed to it), but only as room in
//! its buffer: yamux grows it by itself as its reader keeps up. A data frame that
//! fits yamux's window goes straight through; one that does not (while yamux's
//! window is still smaller than the credit granted here) is held, and released
//! (split if need be) as yamux's window grows. A FIN that arrives behind held bytes
//! waits behind them, so yamux sees each stream exactly as the remote sent it, only
//! later.
//!
//! # Credit
//!
//! What the application reads goes back to the remote as credit in batches of an
//! eighth of the stream's window (at least [`MIN_GRANT`]), so the remote always has
//! most of the window to send into, and no more: the remote's credit, the unread
//! bytes and the batch not yet given back add up to the stream's window, 256 KiB plus
//! the growth it earned. A frame beyond the remote's credit is a flow-control
//! violation and fails the connection.
//!
//! # Memory
//!
//! Every byte the remote sends on a stream is charged to the [`Budget`] when its
//! frame header arrives, and given back when the application read it or dropped the
//! stream. Growth beyond the initial window is reserved (at [`GROWTH_PRIORITY`])
//! before it is granted, and held for as long as the remote may use it; unread bytes
//! beyond that reservation, which are at most the spec's free 256 KiB per stream,
//! are charged at the low [`HELD_PRIORITY`]. When that charge is denied, the stream
//! of this connection holding the most unread bytes is reset (the remote sees RST,
//! the application's reads fail) instead of refusing streams up front: honest
//! concurrent streams cost nothing until they hold data.
//!
//! # Growth
//!
//! See [`WindowBoost`]: a stream whose reader consumed a full window within two
//! round trips has its window raised to `growth_factor` times what it consumed,
//! bounded by the caps and the budget. A stream nobody reads never grows, and one
//! whose reader stops keeps what it had.

use crate::config::{WindowBoost, STREAM_WINDOW};
use crate::frame_scan::{
    FrameHeader, FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, HEADER_LEN, TYPE_DATA, TYPE_PING,
    TYPE_WINDOW_UPDATE,
};
use crate::stats::YamuxStats;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use weft_upgrader::{Budget, Priority, Reservation};

/// A growth smaller than this is not worth a frame.
pub(crate) const MIN_GRANT: u64 = STREAM_WINDOW as u64 / 4;

/// The priority of unread bytes within a stream's free initial window: they may
/// fill at most 1/16 of the connection scope's memory ((15 + 1) / 256: 8 MiB of the
/// default 128 MiB connection scope), so that a
/// remote pushing into many streams at once hits the budget, and has its largest
/// stream reset, long before it crowds out reserved growth.
pub const HELD_PRIORITY: Priority = Priority(15);

/// The priority of window growth a reader earned: up to about 80% of a scope.
pub const GROWTH_PRIORITY: Priority = Priority::HIGH;

/// The most unread bytes within initial windows one connection holds at
/// [`GROWTH_PRIORITY`] when [`HELD_PRIORITY`] is denied because the connection's
/// own reserved growth already fills the low share (a scope's usage counts both):
/// 1/16 of the default 128 MiB connection scope, so that a small stream beside a
/// grown one is not shed for the grown one's reservation.
pub const HELD_CAP_BESIDE_GROWTH: usize = 8 << 20;

/// The most unread bytes one connection without grown windows holds at
/// [`GROWTH_PRIORITY`] when [`HELD_PRIORITY`] is denied: one stream's initial
/// window. The low share counts every reservation of the scope, and the fixed
/// buffers of a peer's connections (a Noise channel keeps 64 KiB) fill the peer
/// scope's share from about 250 connections on; without this floor every stream on
/// them would be shed at its first byte.
pub const HELD_FLOOR: usize = STREAM_WINDOW;

/// The shortest round trip growth assumes: about one scheduling quantum of a busy
/// machine. With the default link rate it allows a stream up to 1 MiB extra on a
/// path whose pings come back faster.
pub(crate) const RTT_FLOOR: Duration = Duration::from_millis(1);

/// The largest data frame a release hands to yamux (yamux refuses bodies over 1 MiB).
const MAX_RELEASE: u64 = 256 * 1024;

/// The largest frame body yamux accepts; a larger frame goes straight to yamux, which
/// fails the connection, instead of being read into memory here.
const YAMUX_MAX_BODY: u64 = 1024 * 1024;

/// The remote sent more than the credit it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream {stream}: the remote sent {received} bytes the application has not read, with only {credit} bytes of window"
)]
pub(crate) struct FlowViolation {
    stream: u32,
    received: u64,
    credit: u64,
}

/// What to do with an inbound frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// Hand the header to yamux; a data frame's body follows unchanged.
    Deliver([u8; HEADER_LEN]),
    /// Hand `first` (if any) to yamux now, then read the `len` body bytes and give
    /// them to [`Boost::push_held`] for `stream`, with `fin` as read.
    Hold {
        /// A header to deliver at once (an ACK split off the held frame).
        first: Option<[u8; HEADER_LEN]>,
        /// The stream.
        stream: u32,
        /// The body length.
        len: u32,
        /// Whether the frame half-closes the stream.
        fin: bool,
    },
    /// Hand `first` (if any) to yamux, then read and drop the `len` body bytes: the
    /// stream was dropped or reset on our side and nobody will read them.
    Discard {
        /// A header to deliver at once (the frame's flags, without its body).
        first: Option<[u8; HEADER_LEN]>,
        /// The body length.
        len: u32,
    },
    /// Nothing to hand to yamux now (a FIN queued behind held bytes).
    Nothing,
}

/// Something held for yamux.
#[derive(Debug)]
enum Held {
    /// Body bytes, of which `start..` are still to deliver.
    Data { body: Vec<u8>, start: usize },
    /// The remote half-closed the stream after the bytes before it.
    Fin,
}

/// How far a stream's reader got in the current growth epoch.
#[derive(Debug)]
struct Epoch {
    /// When the epoch began: the first data byte, or the last growth decision.
    start: Option<Instant>,
    /// Bytes the application consumed since `start`.
    consumed: u64,
    /// Consumption that ends the epoch: a full window (two initial ones at first).
    threshold: u64,
}

/// The credit and memory of one stream.
#[derive(Debug)]
struct Credit {
    /// yamux's own receive window: what yamux can take now.
    yamux: u64,
    /// The extra credit granted so far (and reserved in `grant`).
    extra: u64,
    /// What waits for yamux's window, in order.
    held: VecDeque<Held>,
    /// Body bytes in `held`.
    held_bytes: u64,
    /// Bytes received and not yet consumed by the application: in yamux's buffer
    /// or in `held`.
    unread: u64,
    /// The budget's share of `unread` beyond `extra`, at [`HELD_PRIORITY`].
    charge: Reservation,
    /// The budget's share of `extra`, at [`GROWTH_PRIORITY`].
    grant: Reservation,
    /// The credit the remote has left: what it may send before it hears of more.
    /// `remote + unread + owed` is the stream's window, `256 KiB + extra`.
    remote: u64,
    /// Bytes the application consumed that the remote was not yet given back.
    owed: u64,
    epoch: Epoch,
    /// We sent FIN.
    local_fin: bool,
    /// yamux was handed the remote's FIN.
    remote_fin: bool,
    /// An RST went by, either way: the remote sends nothing more.
    reset: bool,
    /// The stream was dropped on our side: nothing will read it any more.
    dropped: bool,
    /// We reset the stream because the budget was full.
    shed: bool,
    /// The stream is in [`Boost::ready`].
    queued: bool,
}

impl Credit {
    fn new(yamux: u64, budget: &Budget) -> Self {
        Credit {
            yamux,
            extra: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            unread: 0,
            charge: budget.empty(),
            grant: budget.empty(),
            remote: yamux,
            owed: 0,
            epoch: Epoch {
                start: None,
                consumed: 0,
                threshold: 2 * STREAM_WINDOW as u64,
            },
            local_fin: false,
            remote_fin: false,
            reset: false,
            dropped: false,
            shed: false,
            queued: false,
        }
    }

    /// Whether the remote can send nothing more on the stream.
    fn finished(&self) -> bool {
        self.reset || (self.local_fin && self.remote_fin && self.held.is_empty())
    }

    /// Whether what the remote sends is read and dropped.
    fn discarding(&self) -> bool {
        self.dropped || self.shed
    }

    /// The unread bytes not covered by the growth reservation.
    fn charged(&self) -> usize {
        usize::try_from(self.unread.saturating_sub(self.extra)).unwrap_or(usize::MAX)
    }

    /// Lowers the held-bytes charge to what is unread now.
    fn recharge_down(&mut self) {
        let want = self.charged();
        let have = self.charge.bytes();
        if have > want {
            self.charge.shrink(have - want);
        }
    }
}

/// The receive flow control of one connection.
#[derive(Debug)]
pub(crate) struct Boost {
    settings: Option<WindowBoost>,
    /// The most extra credit all streams may have together.
    max_extra: u64,
    budget: Budget,
    /// The smallest round-trip time measured from yamux's pings.
    rtt: Option<Duration>,
    /// yamux's ping in flight: its opaque value and when it left.
    ping: Option<(u32, Instant)>,
    streams: HashMap<u32, Credit>,
    /// Extra credit granted to the streams in `streams`.
    granted: u64,
    /// Window growth to write: stream and delta.
    grants: VecDeque<(u32, u32)>,
    /// Consumed bytes to give back to the remote: stream and delta.
    refills: VecDeque<(u32, u32)>,
    /// Streams that may be able to release held bytes.
    ready: VecDeque<u32>,
    /// Streams reset for the budget that the tap has not yet signalled.
    shed: VecDeque<u32>,
    stats: YamuxStats,
}

impl Boost {
    /// Flow control growing windows with `settings` (none: never), granting at most
    /// `max_extra` beyond the initial windows in all, charging `budget`.
    pub(crate) fn new(
        settings: Option<WindowBoost>,
        max_extra: u64,
        budget: Budget,
        stats: YamuxStats,
    ) -> Self {
        Boost {
            settings,
            max_extra,
            budget,
            rtt: None,
            ping: None,
            streams: HashMap::new(),
            granted: 0,
            grants: VecDeque::new(),
            refills: VecDeque::new(),
            ready: VecDeque::new(),
            shed: VecDeque::new(),
            stats,
        }
    }

    /// Whether bytes are held for any stream.
    pub(crate) fn has_held(&self) -> bool {
        self.streams.values().any(|credit| !credit.held.is_empty())
    }

    /// Whether a held frame could be released now.
    pub(crate) fn can_release(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether window updates wait to be written.
    pub(crate) fn has_grants(&self) -> bool {
        !self.grants.is_empty() || !self.refills.is_empty()
    }

    /// The next window update to write: growth first, then credit for what the
    /// application consumed.
    pub(crate) fn next_grant(&mut self) -> Option<[u8; HEADER_LEN]> {
        let (stream, delta) = match self.grants.pop_front() {
            Some(grant) => {
                tracing::trace!(
                    stream = grant.0,
                    delta = grant.1,
                    "granting extra stream window"
                );
                grant
            }
            None => self.refills.pop_front()?,
        };
        Some(FrameHeader::new(TYPE_WINDOW_UPDATE, 0, stream, delta).encode())
    }

    /// The next window growth to write, without the refills (for tests).
    #[cfg(test)]
    pub(crate) fn next_growth(&mut self) -> Option<[u8; HEADER_LEN]> {
        let (stream, delta) = self.grants.pop_front()?;
        Some(FrameHeader::new(TYPE_WINDOW_UPDATE, 0, stream, delta).encode())
    }

    /// The application read `bytes` from stream `id` at `now`: their memory is given
    /// back, the remote gets the credit back (in batches), and the window may grow.
    pub(crate) fn on_consumed(&mut self, id: u32, bytes: u64, now: Instant) {
        let Some(credit) = self.streams.get_mut(&id) else {
            return;
        };
        if credit.discarding() {
            return;
        }
        let in_yamux = credit.unread.saturating_sub(credit.held_bytes);
        let bytes = bytes.min(in_yamux);
        credit.unread -= bytes;
        credit.recharge_down();
        credit.epoch.consumed = credit.epoch.consumed.saturating_add(bytes);
        credit.owed = credit.owed.saturating_add(bytes);
        self.maybe_grow(id, now);
        self.maybe_refill(id);
    }

    /// Gives the remote back what the application consumed on `id`, once it is
    /// worth a frame: an eighth of the window, at least [`MIN_GRANT`]. Under that,
    /// the remote still has the rest of its window, so it never waits for it.
    ///
    /// What the remote may send stays within yamux's room plus the extra granted:
    /// a stream that never grew gets its credit back as yamux makes room (so its
    /// bytes never wait in the tap), a grown one may run ahead of yamux by its
    /// growth while yamux's own window catches up.
    fn maybe_refill(&mut self, id: u32) {
        let Some(credit) = self.streams.get_mut(&id) else {
            return;
        };
        if credit.reset || credit.remote_fin || credit.discarding() {
            // The remote sends nothing more (or nothing that is kept).
            credit.owed = 0;
            return;
        }
        let window = STREAM_WINDOW as u64 + credit.extra;
        if credit.owed < MIN_GRANT.max(window / 8) {
            return;
        }
        let room = credit
            .yamux
            .saturating_sub(credit.held_bytes)
            .saturating_add(credit.extra)
            .saturating_sub(credit.remote);
        let delta = u32::try_from(credit.owed.min(room)).unwrap_or(u32::MAX);
        if delta == 0 {
            return;
        }
        credit.owed -= u64::from(delta);
        credit.remote += u64::from(delta);
        self.refills.push_back((id, delta));
    }

    /// The next stream reset for the budget, to tell yamux and the remote about.
    pub(crate) fn next_shed(&mut self) -> Option<u32> {
        self.shed.pop_front()
    }

    /// Records a frame header yamux (or the tap) wrote.
    #[cfg(test)]
    pub(crate) fn on_outbound(&mut self, header: FrameHeader) {
        self.on_outbound_at(header, Instant::now());
    }

    /// Records a frame header yamux (or the tap) wrote at `now`.
    pub(crate) fn on_outbound_at(&mut self, header: FrameHeader, now: Instant) {
        match header.frame_type {
            TYPE_PING if header.has(FLAG_SYN) => {
                self.ping = Some((header.length, now));
            }
            TYPE_DATA | TYPE_WINDOW_UPDATE => {
                let id = header.stream_id;
                if header.has(FLAG_SYN) {
                    self.open(id);
                }
                if header.has(FLAG_RST) {
                    self.on_reset(id);
                    return;
                }
                let Some(credit) = self.streams.get_mut(&id) else {
                    return;
                };
                if header.frame_type == TYPE_WINDOW_UPDATE && header.length > 0 {
                    // yamux's update is room in its own buffer, never credit for the
                    // remote (the tap takes it off the wire): held bytes may go.
                    credit.yamux = credit.yamux.saturating_add(u64::from(header.length));
                    if !credit.held.is_empty() && !credit.queued {
                        credit.queued = true;
                        self.ready.push_back(id);
                    }
                    self.maybe_refill(id);
                }
                if header.has(FLAG_FIN) {
                    if let Some(credit) = self.streams.get_mut(&id) {
                        credit.local_fin = true;
                    }
                    self.settle(id);
                }
            }
            _ => {}
        }
    }

    /// Decides what happens to an inbound frame, given its header.
    #[cfg(test)]
    pub(crate) fn on_inbound(&mut self, header: FrameHeader) -> Result<Inbound, FlowViolation> {
        self.on_inbound_at(header, Instant::now())
    }

    /// Decides what happens to an inbound frame read at `now`, given its header.
    pub(crate) fn on_inbound_at(
        &mut self,
        header: FrameHeader,
        now: Instant,
    ) -> Result<Inbound, FlowViolation> {
        let id = header.stream_id;
        let deliver = Inbound::Deliver(header.encode());
        match header.frame_type {
            TYPE_PING => {
                if header.has(FLAG_ACK) {
                    self.on_pong(header.length, now);
                }
                Ok(deliver)
            }
            TYPE_WINDOW_UPDATE => {
                if header.has(FLAG_SYN) {
                    self.open(id);
                }
                if header.has(FLAG_RST) {
                    self.on_reset(id);
                    return Ok(deliver);
                }
                if !header.has(FLAG_FIN) {
                    return Ok(deliver);
                }
                let Some(credit) = self.streams.get_mut(&id) else {
                    return Ok(deliver);
                };
                if credit.held.is_empty() {
                    credit.remote_fin = true;
                    self.settle(id);
                    return Ok(deliver);
                }
                // The FIN waits behind the held bytes; the credit and other flags
                // it carries are for our sending side and go to yamux at once.
                credit.held.push_back(Held::Fin);
                let rest = FrameHeader {
                    flags: header.flags & !FLAG_FIN,
                    ..header
                };
                if rest.flags == 0 && rest.length == 0 {
                    Ok(Inbound::Nothing)
                } else {
                    Ok(Inbound::Deliver(rest.encode()))
                }
            }
            TYPE_DATA => self.on_inbound_data(header, now),
            _ => Ok(deliver),
        }
    }

    fn on_inbound_data(
        &mut self,
        header: FrameHeader,
        now: Instant,
    ) -> Result<Inbound, FlowViolation> {
        let id = header.stream_id;
        let len = u64::from(header.length);
        let fin = header.has(FLAG_FIN);
        let deliver = Inbound::Deliver(header.encode());
        if header.has(FLAG_RST) {
            self.on_reset(id);
            return Ok(deliver);
        }
        if header.has(FLAG_SYN) && !self.streams.contains_key(&id) {
            // yamux checks the first body against the 256 KiB initial window itself.
            // (A SYN on a known stream is checked as any frame; yamux then fails the
            // connection for it.)
            self.open(id);
            if len > STREAM_WINDOW as u64 {
                return Ok(deliver);
            }
            if len > 0 && !self.charge(id, len, now) {
                // Shed at once: yamux still learns of the stream, without its body.
                let first = FrameHeader::new(TYPE_DATA, header.flags, id, 0).encode();
                return Ok(Inbound::Discard {
                    first: Some(first),
                    len: header.length,
                });
            }
            if let Some(credit) = self.streams.get_mut(&id) {
                credit.yamux = credit.yamux.saturating_sub(len);
                credit.remote = credit.remote.saturating_sub(len);
                credit.remote_fin |= fin;
            }
            return Ok(deliver);
        }
        let Some(credit) = self.streams.get(&id) else {
            return Ok(deliver);
        };
        // yamux refuses bodies over 1 MiB, but a peer may send one frame as large as
        // the window it was granted (js-libp2p does): such a frame, within its credit,
        // is held and handed to yamux in pieces it takes.
        let fits = credit.held.is_empty() && len <= credit.yamux && len <= YAMUX_MAX_BODY;
        // yamux's own window is only room, so the remote's credit is checked here.
        if !credit.discarding() && len > credit.remote {
            return Err(FlowViolation {
                stream: id,
                received: credit.unread.saturating_add(len),
                credit: STREAM_WINDOW as u64 + credit.extra,
            });
        }
        if !credit.discarding() {
            // When denied, the stream is shed and what it carries dropped below.
            self.charge(id, len, now);
        }
        let Some(credit) = self.streams.get_mut(&id) else {
            return Ok(deliver);
        };
        credit.remote = credit.remote.saturating_sub(len);
        // Flags other than FIN (an ACK) concern our sending side: they go at once.
        let other = header.flags & !FLAG_FIN;
        let first =
            (other != 0).then(|| FrameHeader::new(TYPE_WINDOW_UPDATE, other, id, 0).encode());
        if credit.discarding() {
            let first = if fin {
                credit.remote_fin = true;
                self.settle(id);
                Some(FrameHeader::new(TYPE_DATA, header.flags, id, 0).encode())
            } else {
                first
            };
            return Ok(Inbound::Discard {
                first,
                len: header.length,
            });
        }
        if fits {
            credit.yamux -= len;
            if fin {
                credit.remote_fin = true;
                self.settle(id);
            }
            return Ok(deliver);
        }
        Ok(Inbound::Hold {
            first,
            stream: id,
            len: header.length,
            fin,
        })
    }

    /// Charges `len` more unread bytes to stream `id`. When the budget denies it,
    /// sheds the largest holder of the connection and tries once more; when that is
    /// denied too (or `id` was the largest), sheds `id` and returns `false`.
    fn charge(&mut self, id: u32, len: u64, now: Instant) -> bool {
        for attempt in 0..2 {
            let Some(credit) = self.streams.get_mut(&id) else {
                return false;
            };
            let unread = credit.unread.saturating_add(len);
            let want = usize::try_from(unread.saturating_sub(credit.extra)).unwrap_or(usize::MAX);
            let more = want.saturating_sub(credit.charge.bytes());
            let mut charged = credit.charge.grow(more, HELD_PRIORITY).is_ok();
            if !charged {
                // The low share counts our own reserved growth and every fixed
                // buffer of the scope too.
                let cap = if self.granted > 0 {
                    HELD_CAP_BESIDE_GROWTH
                } else {
                    HELD_FLOOR
                };
                let held: usize = self.streams.values().map(|c| c.charge.bytes()).sum();
                if held.saturating_add(more) <= cap {
                    if let Some(credit) = self.streams.get_mut(&id) {
                        charged = credit.charge.grow(more, GROWTH_PRIORITY).is_ok();
                    }
                }
            }
            let Some(credit) = self.streams.get_mut(&id) else {
                return false;
            };
            if charged {
                credit.unread = unread;
                if credit.epoch.start.is_none() && len > 0 {
                    credit.epoch.start = Some(now);
                }
                return true;
            }
            let own = credit.unread;
            let victim = (attempt == 0)
                .then(|| self.largest_holder())
                .flatten()
                .filter(|&(victim, bytes)| victim != id && bytes >= own);
            match victim {
                Some((victim, _)) => self.shed_stream(victim),
                None => break,
            }
        }
        self.shed_stream(id);
        false
    }

    /// The stream holding the most unread bytes that can still be shed.
    fn largest_holder(&self) -> Option<(u32, u64)> {
        self.streams
            .iter()
            .filter(|(_, c)| !c.discarding() && !c.reset && c.unread > 0)
            .map(|(&id, c)| (id, c.unread))
            .max_by_key(|&(id, unread)| (unread, std::cmp::Reverse(id)))
    }

    /// Resets `id` for the budget: what it holds is given back (what yamux buffers
    /// for it is freed as soon as its stream is next polled or dropped, which the
    /// reset wakes it for), and what the remote still sends on it is dropped.
    fn shed_stream(&mut self, id: u32) {
        let Some(credit) = self.streams.get_mut(&id) else {
            return;
        };
        if credit.shed {
            return;
        }
        tracing::warn!(
            stream = id,
            unread = credit.unread,
            "memory budget full: resetting the stream that holds the most unread bytes"
        );
        credit.shed = true;
        credit.held.clear();
        credit.held_bytes = 0;
        credit.unread = 0;
        drop(std::mem::replace(&mut credit.charge, self.budget.empty()));
        self.stats.count_shed();
        self.shed.push_back(id);
        self.release_grant(id);
    }

    /// Gives back the growth reservation of `id`: the remote can use it no more.
    fn release_grant(&mut self, id: u32) {
        if let Some(credit) = self.streams.get_mut(&id) {
            self.granted -= credit.extra;
            credit.extra = 0;
            drop(std::mem::replace(&mut credit.grant, self.budget.empty()));
            // Unread bytes the grant covered are charged as held now (best effort).
            let want = credit.charged();
            let more = want.saturating_sub(credit.charge.bytes());
            let _ = credit.charge.grow(more, Priority::ALWAYS);
        }
    }

    /// Stores the body of a frame [`Inbound::Hold`] asked to hold.
    pub(crate) fn push_held(&mut self, stream: u32, body: Vec<u8>, fin: bool) {
        let Some(credit) = self.streams.get_mut(&stream) else {
            // Reset or dropped meanwhile: nobody will read it.
            return;
        };
        if credit.discarding() || credit.reset {
            credit.unread = credit.unread.saturating_sub(body.len() as u64);
            credit.recharge_down();
            if fin {
                credit.remote_fin = true;
                self.settle(stream);
            }
            return;
        }
        credit.held_bytes += body.len() as u64;
        if !body.is_empty() {
            credit.held.push_back(Held::Data { body, start: 0 });
        }
        if fin {
            credit.held.push_back(Held::Fin);
        }
        let releasable = credit.yamux > 0 || matches!(credit.held.front(), Some(Held::Fin));
        if releasable && !credit.queued {
            credit.queued = true;
            self.ready.push_back(stream);
        }
    }

    /// The next held frame yamux has room for, if any: its header and body.
    ///
    /// A held body that goes whole is handed over as it is, without a copy.
    pub(crate) fn release(&mut self) -> Option<([u8; HEADER_LEN], Vec<u8>)> {
        while let Some(id) = self.ready.pop_front() {
            let Some(credit) = self.streams.get_mut(&id) else {
                continue;
            };
            credit.queued = false;
            let fin_next = matches!(credit.held.get(1), Some(Held::Fin));
            let room = usize::try_from(credit.yamux.min(MAX_RELEASE)).unwrap_or(usize::MAX);
            let (body, fin) = match credit.held.front_mut() {
                None => continue,
                Some(Held::Fin) => {
                    credit.held.pop_front();
                    (Vec::new(), true)
                }
                Some(Held::Data { body, start }) => {
                    let left = body.len().saturating_sub(*start);
                    let take = room.min(left);
                    if take == 0 {
                        continue;
                    }
                    if take == left && *start == 0 {
                        let whole = std::mem::take(body);
                        credit.held.pop_front();
                        (whole, fin_next)
                    } else {
                        let part = body.get(*start..*start + take).unwrap_or_default().to_vec();
                        *start += take;
                        if *start >= body.len() {
                            credit.held.pop_front();
                        }
                        (part, take == left && fin_next)
                    }
                }
            };
            if fin && !body.is_empty() {
                // The FIN that followed the bytes goes on their frame.
                credit.held.pop_front();
            }
            let take = body.len() as u64;
            credit.yamux -= take;
            credit.held_bytes -= take;
            credit.remote_fin |= fin;
            let more = match credit.held.front() {
                Some(Held::Fin) => true,
                Some(Held::Data { .. }) => credit.yamux > 0,
                None => false,
            };
            if more {
                credit.queued = true;
                self.ready.push_back(id);
            }
            if fin {
                self.settle(id);
            }
            let flags = if fin { FLAG_FIN } else { 0 };
            // A body is at most MAX_RELEASE long, so its length fits a u32.
            let header = FrameHeader::new(TYPE_DATA, flags, id, take as u32);
            return Some((header.encode(), body));
        }
        None
    }

    /// The stream was dropped on our side (or reset by the application, which drops
    /// yamux's stream): what is held for it, in yamux or here, is given back, and
    /// whatever the remote still sends is discarded.
    pub(crate) fn on_dropped(&mut self, stream: u32) {
        let Some(credit) = self.streams.get_mut(&stream) else {
            return;
        };
        credit.dropped = true;
        if credit.held.iter().any(|held| matches!(held, Held::Fin)) {
            credit.remote_fin = true;
        }
        credit.held.clear();
        credit.held_bytes = 0;
        credit.unread = 0;
        credit.recharge_down();
        self.release_grant(stream);
        self.settle(stream);
    }

    /// An RST went by on `id`, either way.
    fn on_reset(&mut self, id: u32) {
        let Some(credit) = self.streams.get_mut(&id) else {
            return;
        };
        credit.reset = true;
        // Held bytes never reach yamux now; what yamux buffers stays charged until
        // the application drops the stream.
        credit.unread = credit.unread.saturating_sub(credit.held_bytes);
        credit.held.clear();
        credit.held_bytes = 0;
        credit.recharge_down();
        self.settle(id);
    }

    /// A new stream, in either direction.
    fn open(&mut self, id: u32) {
        let budget = &self.budget;
        self.streams
            .entry(id)
            .or_insert_with(|| Credit::new(STREAM_WINDOW as u64, budget));
    }

    /// Ends the epoch of `id` once its reader consumed a full window; grows the
    /// window when that took at most two round trips.
    fn maybe_grow(&mut self, id: u32, now: Instant) {
        let Some(settings) = self.settings else {
            return;
        };
        let rtt = self.rtt;
        let room = self.max_extra.saturating_sub(self.granted);
        let Some(credit) = self.streams.get_mut(&id) else {
            return;
        };
        let Some(start) = credit.epoch.start else {
            return;
        };
        if credit.epoch.consumed < credit.epoch.threshold {
            return;
        }
        let consumed = credit.epoch.consumed;
        let window = STREAM_WINDOW as u64 + credit.extra;
        credit.epoch = Epoch {
            start: Some(now),
            consumed: 0,
            threshold: window,
        };
        let Some(rtt) = rtt else {
            return;
        };
        // On loopback and LANs the ping's round trip is tens of microseconds, but a
        // busy reader is scheduled only every millisecond or so: that, not the wire,
        // is the round trip its window must cover.
        let rtt = rtt.max(RTT_FLOOR);
        let fast = now.saturating_duration_since(start) <= 2 * rtt;
        if !fast || credit.discarding() || credit.finished() || credit.remote_fin {
            return;
        }
        // `as` saturates for floats out of range.
        let by_rate = (rtt.as_secs_f64() * settings.link_rate as f64) as u64;
        let cap = u64::from(settings.max_per_stream).min(by_rate);
        let target = consumed
            .saturating_mul(u64::from(settings.growth_factor))
            .min(STREAM_WINDOW as u64 + cap);
        let mut delta = target.saturating_sub(window).min(room);
        while delta >= MIN_GRANT {
            let bytes = usize::try_from(delta).unwrap_or(usize::MAX);
            if credit.grant.grow(bytes, GROWTH_PRIORITY).is_ok() {
                break;
            }
            self.stats.count_growth_denied();
            delta /= 2;
        }
        if delta < MIN_GRANT {
            return;
        }
        // `delta` <= max_per_stream, a u32.
        let delta32 = u32::try_from(delta).unwrap_or(u32::MAX);
        credit.extra += u64::from(delta32);
        credit.remote += u64::from(delta32);
        credit.epoch.threshold = window + u64::from(delta32);
        // Unread bytes the grant now covers need no held charge.
        credit.recharge_down();
        self.granted += u64::from(delta32);
        self.stats.count_grown();
        self.grants.push_back((id, delta32));
    }

    fn on_pong(&mut self, value: u32, now: Instant) {
        let Some((sent, at)) = self.ping else {
            return;
        };
        if sent != value {
            return;
        }
        self.ping = None;
        // The smallest sample: a busy scheduler only ever delays a pong, so the
        // minimum is the best estimate of the path's own round trip.
        let sample = now.saturating_duration_since(at);
        let rtt = self.rtt.map_or(sample, |known| known.min(sample));
        tracing::trace!(?sample, ?rtt, "round-trip time from yamux ping");
        self.rtt = Some(rtt);
    }

    /// Forgets what the remote can no longer use, and the stream itself once the
    /// application dropped it and the remote can send nothing more.
    fn settle(&mut self, id: u32) {
        let Some(credit) = self.streams.get(&id) else {
            return;
        };
        if !credit.finished() {
            return;
        }
        if credit.dropped {
            self.remove(id);
        } else if credit.extra > 0 {
            self.release_grant(id);
        }
    }

    fn remove(&mut self, id: u32) {
        if let Some(credit) = self.streams.remove(&id) {
            self.granted -= credit.extra;
        }
    }

    /// Streams tracked (for tests).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.streams.len()
    }

    /// Sets the round-trip time directly (for tests).
    #[cfg(test)]
    pub(crate) fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = Some(rtt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_upgrader::test_suite::CountingBudget;

    const MIB: u32 = 1 << 20;
    const WINDOW: u32 = STREAM_WINDOW as u32;

    fn settings() -> WindowBoost {
        WindowBoost {
            link_rate: 1 << 30,
            max_per_stream: 8 * MIB,
            max_per_connection: 20 << 20,
            growth_factor: 8,
        }
    }

    fn with_budget(budget: Budget) -> Boost {
        let mut boost = Boost::new(Some(settings()), 20 << 20, budget, YamuxStats::default());
        boost.set_rtt(Duration::from_secs(1));
        boost
    }

    fn boost() -> Boost {
        with_budget(Budget::unlimited())
    }

    /// The application reads `bytes` from stream `id` at `at`, and yamux (as its
    /// window is still at 256 KiB) writes a window update for them.
    fn read(boost: &mut Boost, id: u32, bytes: u32, at: Instant) {
        boost.on_consumed(id, u64::from(bytes), at);
        boost.on_outbound_at(window(0, id, bytes), at);
    }

    /// Receives and consumes `windows` full initial windows on stream `id` at `at`,
    /// as a reader that keeps up.
    fn consume(boost: &mut Boost, id: u32, windows: u32, at: Instant) {
        for _ in 0..windows {
            let decided = boost.on_inbound_at(data(0, id, WINDOW), at).unwrap();
            assert!(matches!(decided, Inbound::Deliver(_)), "{decided:?}");
            read(boost, id, WINDOW, at);
        }
    }

    /// Whether window growth waits to be written.
    fn has_growth(boost: &Boost) -> bool {
        !boost.grants.is_empty()
    }

    /// Makes stream `id` earn its first growth; returns the extra window granted.
    fn earn(boost: &mut Boost, id: u32) -> u32 {
        consume(boost, id, 2, Instant::now());
        let granted = grants(boost);
        assert_eq!(granted.len(), 1, "{granted:?}");
        assert_eq!(granted[0].stream_id, id);
        granted[0].length
    }

    fn data(flags: u16, id: u32, len: u32) -> FrameHeader {
        FrameHeader::new(TYPE_DATA, flags, id, len)
    }

    fn window(flags: u16, id: u32, delta: u32) -> FrameHeader {
        FrameHeader::new(TYPE_WINDOW_UPDATE, flags, id, delta)
    }

    /// The window growth written (refills stay queued).
    fn grants(boost: &mut Boost) -> Vec<FrameHeader> {
        std::iter::from_fn(|| boost.next_growth())
            .map(|bytes| FrameHeader::decode(&bytes))
            .collect()
    }

    /// Releases everything yamux has room for, as bytes on the wire.
    fn release_all(boost: &mut Boost) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((header, body)) = boost.release() {
            out.extend_from_slice(&header);
            out.extend_from_slice(&body);
        }
        out
    }

    /// Splits `out` into frames (header + body).
    fn frames(out: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut rest = out;
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let header = FrameHeader::decode(rest[..HEADER_LEN].try_into().unwrap());
            let len = if header.frame_type == TYPE_DATA {
                header.length as usize
            } else {
                0
            };
            frames.push((header, rest[HEADER_LEN..HEADER_LEN + len].to_vec()));
            rest = &rest[HEADER_LEN + len..];
        }
        frames
    }

    #[test]
    fn a_reader_that_keeps_up_earns_growth_bounded_by_what_it_consumed() {
        let mut boost = boost();
        let start = Instant::now();
        boost.on_outbound_at(window(FLAG_SYN, 1, 0), start);
        // One initial window read: not yet (the first growth needs two).
        consume(&mut boost, 1, 1, start);
        assert!(!has_growth(&boost));
        consume(&mut boost, 1, 1, start + Duration::from_millis(500));
        // 512 KiB consumed within two round trips: the window becomes 8 x 512 KiB.
        let granted = grants(&mut boost);
        assert_eq!(granted.len(), 1);
        assert_eq!(granted[0].length, 4 * MIB - WINDOW);
        // The next epoch needs the whole new window consumed; then x8 again, up to
        // the per-stream cap of 8 MiB extra.
        let next = start + Duration::from_millis(900);
        consume(&mut boost, 1, 15, next);
        assert!(!has_growth(&boost));
        consume(&mut boost, 1, 1, next);
        let granted = grants(&mut boost);
        assert_eq!(granted.len(), 1);
        assert_eq!(
            u64::from(granted[0].length),
            u64::from(8 * MIB + WINDOW) - u64::from(4 * MIB)
        );
    }

    #[test]
    fn a_slow_reader_an_unread_stream_and_an_echo_that_stalls_earn_nothing() {
        let mut boost = boost();
        let start = Instant::now();
        // Slow: two windows over three round trips.
        boost.on_outbound_at(window(FLAG_SYN, 1, 0), start);
        consume(&mut boost, 1, 1, start);
        consume(&mut boost, 1, 1, start + Duration::from_secs(3));
        assert!(!has_growth(&boost));
        // Nobody reads: the remote fills the initial window and no more.
        boost.on_inbound_at(window(FLAG_SYN, 2, 0), start).unwrap();
        boost.on_inbound_at(data(0, 2, WINDOW), start).unwrap();
        assert!(boost.on_inbound_at(data(0, 2, 1), start).is_err());
        // An echo handler reads one window (and a bit), then blocks writing.
        boost.on_inbound_at(window(FLAG_SYN, 4, 0), start).unwrap();
        consume(&mut boost, 4, 1, start);
        boost.on_inbound_at(data(0, 4, 64 * 1024), start).unwrap();
        read(&mut boost, 4, 64 * 1024, start);
        boost.on_inbound_at(data(0, 4, WINDOW), start).unwrap();
        assert!(!has_growth(&boost));
        assert!(boost.on_inbound_at(data(0, 4, 1), start).is_err());
    }

    #[test]
    fn what_the_application_reads_goes_back_to_the_remote_in_batches() {
        let mut boost = boost();
        let at = Instant::now();
        boost.on_inbound_at(data(FLAG_SYN, 2, WINDOW), at).unwrap();
        // yamux's own updates are room in its buffer, no credit for the remote.
        boost.on_outbound_at(window(FLAG_ACK, 2, 8 * MIB), at);
        assert!(!boost.has_grants());
        assert!(boost.on_inbound_at(data(0, 2, 1), at).is_err());
        // Under a batch (an eighth of the window, at least 64 KiB): nothing yet.
        boost.on_consumed(2, 60_000, at);
        assert!(!boost.has_grants());
        boost.on_consumed(2, 10_000, at);
        let update = FrameHeader::decode(&boost.next_grant().unwrap());
        assert_eq!(
            (update.frame_type, update.stream_id),
            (TYPE_WINDOW_UPDATE, 2)
        );
        assert_eq!(update.length, 70_000);
        assert!(boost.next_grant().is_none());
        // That credit and no more.
        boost.on_inbound_at(data(0, 2, 70_000), at).unwrap();
        assert!(boost.on_inbound_at(data(0, 2, 1), at).is_err());
        // More read than was received is no credit either.
        let mut fresh = Boost::new(None, 0, Budget::unlimited(), YamuxStats::default());
        fresh.on_inbound_at(data(FLAG_SYN, 4, 1000), at).unwrap();
        fresh.on_consumed(4, 1 << 20, at);
        assert!(!fresh.has_grants());
    }

    #[test]
    fn a_stream_that_never_grew_gets_its_credit_back_as_yamux_makes_room() {
        let mut boost = boost();
        let at = Instant::now();
        boost.on_inbound_at(data(FLAG_SYN, 2, WINDOW), at).unwrap();
        // Read, but yamux has not made room yet (it does at half its window).
        boost.on_consumed(2, u64::from(WINDOW), at);
        assert!(!boost.has_grants());
        // Its update: the remote gets as much, so what it sends fits yamux.
        boost.on_outbound_at(window(0, 2, WINDOW / 2), at);
        let update = FrameHeader::decode(&boost.next_grant().unwrap());
        assert_eq!(update.length, WINDOW / 2);
        boost.on_outbound_at(window(0, 2, WINDOW / 2), at);
        let update = FrameHeader::decode(&boost.next_grant().unwrap());
        assert_eq!(update.length, WINDOW / 2);
        assert!(matches!(
            boost.on_inbound_at(data(0, 2, WINDOW), at).unwrap(),
            Inbound::Deliver(_)
        ));
    }

    #[test]
    fn an_inflated_round_trip_does_not_inflate_the_grant() {
        let mut boost = boost();
        // A remote that delays its pongs: a 100 s round trip.
        boost.set_rtt(Duration::from_secs(100));
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        assert!(!has_growth(&boost));
        let extra = earn(&mut boost, 1);
        assert_eq!(extra, 8 * 2 * WINDOW - WINDOW, "bounded by 8 x consumed");
        // Without any round trip measured nothing grows at all.
        let mut unmeasured = Boost::new(
            Some(settings()),
            20 << 20,
            Budget::unlimited(),
            YamuxStats::default(),
        );
        unmeasured.on_outbound(window(FLAG_SYN, 1, 0));
        consume(&mut unmeasured, 1, 4, Instant::now());
        assert!(!has_growth(&unmeasured));
    }

    #[test]
    fn the_connection_cap_and_link_rate_bound_growth() {
        let mut boost = Boost::new(
            Some(WindowBoost {
                link_rate: 2 << 20,
                ..settings()
            }),
            20 << 20,
            Budget::unlimited(),
            YamuxStats::default(),
        );
        // 2 MiB/s x 1 s: at most 2 MiB extra.
        boost.set_rtt(Duration::from_secs(1));
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        assert_eq!(earn(&mut boost, 1), 2 * MIB);
        let mut capped = Boost::new(
            Some(settings()),
            5 << 20,
            Budget::unlimited(),
            YamuxStats::default(),
        );
        capped.set_rtt(Duration::from_secs(1));
        capped.on_outbound(window(FLAG_SYN, 1, 0));
        capped.on_outbound(window(FLAG_SYN, 3, 0));
        assert_eq!(earn(&mut capped, 1), 4 * MIB - WINDOW);
        // 5 MiB in all: 1.25 MiB left for stream 3.
        assert_eq!(earn(&mut capped, 3), 5 * MIB - (4 * MIB - WINDOW));
    }

    #[test]
    fn held_bytes_are_charged_as_they_arrive_and_given_back_when_read_or_dropped() {
        let (source, budget) = CountingBudget::new(1 << 30);
        let mut boost = with_budget(budget);
        boost.on_inbound(data(FLAG_SYN, 2, 1000)).unwrap();
        assert_eq!(source.used(), 1000);
        boost.on_inbound(data(0, 2, 5000)).unwrap();
        assert_eq!(source.used(), 6000);
        read(&mut boost, 2, 4000, Instant::now());
        assert_eq!(source.used(), 2000);
        boost.on_dropped(2);
        assert_eq!(source.used(), 0);
        // A grown window is reserved while the remote may use it, then given back.
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        let extra = earn(&mut boost, 1);
        assert_eq!(source.used(), extra as usize);
        boost.on_inbound(data(FLAG_RST, 1, 0)).unwrap();
        assert_eq!(source.used(), 0);
        boost.on_dropped(1);
        // Stream 2 stays, discarding, until its RST (yamux sends one on a drop).
        assert_eq!(boost.tracked(), 1);
        boost.on_outbound(data(FLAG_RST, 2, 0));
        assert_eq!(boost.tracked(), 0);
        assert_eq!(source.used(), 0);
    }

    #[test]
    fn a_full_budget_sheds_the_largest_holder() {
        // Held bytes may fill (15 + 1) / 256 of 4 MiB = 262,144 bytes.
        let (source, budget) = CountingBudget::new(4 << 20);
        let stats = YamuxStats::default();
        let mut boost = Boost::new(Some(settings()), 20 << 20, budget, stats.clone());
        boost.on_inbound(data(FLAG_SYN, 2, 200_000)).unwrap();
        boost.on_inbound(data(FLAG_SYN, 4, 50_000)).unwrap();
        assert_eq!(boost.next_shed(), None);
        // 12,300 bytes more on stream 4 do not fit: stream 2, the largest, goes.
        let decided = boost.on_inbound(data(0, 4, 12_300)).unwrap();
        assert!(matches!(decided, Inbound::Deliver(_)));
        assert_eq!(boost.next_shed(), Some(2));
        assert_eq!(boost.next_shed(), None);
        assert_eq!(stats.streams_shed(), 1);
        assert_eq!(source.used(), 62_300);
        // What the remote still sends on it is dropped, its FIN still reaches yamux.
        assert_eq!(
            boost.on_inbound(data(0, 2, 1000)).unwrap(),
            Inbound::Discard {
                first: None,
                len: 1000
            }
        );
        // A stream that is itself the largest holder is shed, its frame dropped.
        boost.on_inbound(data(FLAG_SYN, 6, 190_000)).unwrap();
        let decided = boost.on_inbound(data(0, 6, 10_000)).unwrap();
        assert_eq!(
            decided,
            Inbound::Discard {
                first: None,
                len: 10_000
            }
        );
        assert_eq!(boost.next_shed(), Some(6));
        assert_eq!(source.used(), 62_300);
        for id in [2, 4, 6] {
            boost.on_dropped(id);
        }
        assert_eq!(source.used(), 0);
    }

    #[test]
    fn fixed_buffers_filling_the_low_share_leave_each_connection_one_window() {
        // Held bytes may fill 262,144 bytes of 4 MiB, but other connections' fixed
        // buffers (Noise keeps 64 KiB each) already take 300,000 of the scope.
        let (_source, budget) = CountingBudget::new(4 << 20);
        let _buffers = budget.reserve(300_000, Priority::MEDIUM).unwrap();
        let mut boost = Boost::new(Some(settings()), 20 << 20, budget, YamuxStats::default());
        boost.on_inbound(data(FLAG_SYN, 2, 1)).unwrap();
        boost.on_inbound(data(FLAG_SYN, 4, 200_000)).unwrap();
        assert_eq!(boost.next_shed(), None, "the first window's bytes are held");
        boost.on_inbound(data(0, 2, 70_000)).unwrap();
        assert_eq!(
            boost.next_shed(),
            Some(4),
            "beyond it the largest holder goes"
        );
    }

    #[test]
    fn a_denied_growth_keeps_the_window_and_the_stream_working() {
        // Growth may fill (203 + 1) / 256 of 2 MiB, about 1.6 MiB, short of the
        // 3.75 MiB earned: the grant is halved until it fits.
        let (source, budget) = CountingBudget::new(2 << 20);
        let stats = YamuxStats::default();
        let mut boost = Boost::new(Some(settings()), 20 << 20, budget, stats.clone());
        boost.set_rtt(Duration::from_secs(1));
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        let extra = earn(&mut boost, 1);
        assert_eq!(stats.growth_denied(), 2);
        assert_eq!(extra, (4 * MIB - WINDOW) / 4);
        assert_eq!(source.used(), extra as usize);
        // A stream with a second growth denied outright keeps its window and works.
        boost.on_inbound(window(FLAG_SYN, 3, 0)).unwrap();
        let _keep = weft_upgrader::Budget::unlimited();
        let at = Instant::now();
        let before = stats.growth_denied();
        consume(&mut boost, 3, 2, at);
        let granted = grants(&mut boost);
        assert!(stats.growth_denied() > before);
        assert!(granted.iter().all(|g| u64::from(g.length) < 1 << 20));
        consume(&mut boost, 3, 4, at + Duration::from_secs(10));
        assert!(source.used() <= 2 << 20);
    }

    #[test]
    fn fitting_frames_pass_and_the_rest_is_held_then_released_in_order() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        earn(&mut boost, 1);
        let window_bytes = STREAM_WINDOW as u32;
        assert_eq!(
            boost.on_inbound(data(0, 1, window_bytes - 100)).unwrap(),
            Inbound::Deliver(data(0, 1, window_bytes - 100).encode())
        );
        // 200 bytes do not fit the 100 left: held, whole.
        let held = boost.on_inbound(data(0, 1, 200)).unwrap();
        assert_eq!(
            held,
            Inbound::Hold {
                first: None,
                stream: 1,
                len: 200,
                fin: false
            }
        );
        boost.push_held(1, vec![1; 200], false);
        // Once held, even a frame that would fit waits behind.
        assert!(matches!(
            boost.on_inbound(data(0, 1, 10)).unwrap(),
            Inbound::Hold { len: 10, .. }
        ));
        boost.push_held(1, vec![2; 10], false);
        // A FIN-only window update queues behind them; nothing goes to yamux yet.
        assert_eq!(
            boost.on_inbound(window(FLAG_FIN, 1, 0)).unwrap(),
            Inbound::Nothing
        );
        // yamux has 100 bytes of room: the first 100 go.
        let out = release_all(&mut boost);
        let got = frames(&out);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0.length, got[0].0.flags), (100, 0));
        assert_eq!(got[0].1, vec![1; 100]);
        // yamux grants 1000: the rest, with the FIN on the last frame.
        boost.on_outbound(window(0, 1, 1000));
        let out = release_all(&mut boost);
        let got = frames(&out);
        let shape: Vec<_> = got.iter().map(|(h, b)| (h.flags, b.len())).collect();
        assert_eq!(shape, vec![(0, 100), (FLAG_FIN, 10)]);
        assert_eq!(got[1].1, vec![2; 10]);
        // Our own FIN ends the stream; it is forgotten once dropped.
        boost.on_outbound(data(FLAG_FIN, 1, 0));
        assert_eq!(boost.tracked(), 1);
        boost.on_dropped(1);
        assert_eq!(boost.tracked(), 0);
    }

    #[test]
    fn sending_beyond_the_granted_credit_is_a_violation() {
        let mut boost = boost();
        boost.on_inbound(window(FLAG_SYN, 2, 0)).unwrap();
        consume(&mut boost, 2, 2, Instant::now());
        // The remote's credit: the initial window and every update written (growth
        // and the batches of what was read), less the two windows it sent.
        let written: u32 = std::iter::from_fn(|| boost.next_grant())
            .map(|bytes| FrameHeader::decode(&bytes).length)
            .sum();
        let limit = WINDOW + written - 2 * WINDOW;
        assert!(limit > 2 * MIB, "{limit}");
        let mut sent = 0;
        while sent + MIB <= limit {
            match boost.on_inbound(data(0, 2, MIB)).unwrap() {
                Inbound::Deliver(_) => {}
                Inbound::Hold { len, .. } => boost.push_held(2, vec![0; len as usize], false),
                other => panic!("{other:?}"),
            }
            sent += MIB;
        }
        let over = limit - sent + 1;
        let err = boost.on_inbound(data(0, 2, over)).unwrap_err();
        assert_eq!(err.stream, 2);
        // Without the boost's grant the same stream could not hold anything.
        let mut plain = Boost::new(None, 0, Budget::unlimited(), YamuxStats::default());
        plain.on_inbound(window(FLAG_SYN, 2, 0)).unwrap();
        plain.on_inbound(data(0, 2, STREAM_WINDOW as u32)).unwrap();
        assert!(plain.on_inbound(data(0, 2, 1)).is_err());
    }

    #[test]
    fn an_ack_on_a_held_frame_goes_at_once() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        earn(&mut boost, 1);
        boost.on_inbound(data(0, 1, STREAM_WINDOW as u32)).unwrap();
        let decided = boost.on_inbound(data(FLAG_ACK | FLAG_FIN, 1, 5)).unwrap();
        let Inbound::Hold { first, fin, .. } = decided else {
            panic!("{decided:?}")
        };
        assert!(fin);
        let first = FrameHeader::decode(&first.unwrap());
        assert_eq!(
            (first.frame_type, first.flags, first.length),
            (TYPE_WINDOW_UPDATE, FLAG_ACK, 0)
        );
    }

    #[test]
    fn a_window_update_with_fin_behind_held_bytes_keeps_its_credit() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        earn(&mut boost, 1);
        boost.on_inbound(data(0, 1, STREAM_WINDOW as u32)).unwrap();
        let _ = boost.on_inbound(data(0, 1, 5)).unwrap();
        boost.push_held(1, vec![0; 5], false);
        let decided = boost.on_inbound(window(FLAG_FIN, 1, 4096)).unwrap();
        let Inbound::Deliver(bytes) = decided else {
            panic!("{decided:?}")
        };
        let header = FrameHeader::decode(&bytes);
        assert_eq!((header.flags, header.length), (0, 4096));
    }

    #[test]
    fn dropping_a_stream_frees_what_is_held_and_discards_what_follows() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        earn(&mut boost, 1);
        boost.on_inbound(data(0, 1, STREAM_WINDOW as u32)).unwrap();
        let _ = boost.on_inbound(data(0, 1, 1000)).unwrap();
        boost.push_held(1, vec![0; 1000], false);
        assert!(boost.has_held());
        boost.on_dropped(1);
        assert!(!boost.has_held());
        assert_eq!(
            boost.on_inbound(data(0, 1, 1000)).unwrap(),
            Inbound::Discard {
                first: None,
                len: 1000
            }
        );
        // The remote's FIN still reaches yamux, without the body.
        let decided = boost.on_inbound(data(FLAG_FIN, 1, 1000)).unwrap();
        let Inbound::Discard {
            first: Some(first), ..
        } = decided
        else {
            panic!("{decided:?}")
        };
        assert_eq!(FrameHeader::decode(&first).length, 0);
        boost.on_outbound(window(FLAG_FIN, 1, 0));
        assert_eq!(boost.tracked(), 0);
    }

    #[test]
    fn releases_are_split_to_what_yamux_takes_in_one_frame() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        earn(&mut boost, 1);
        boost.on_inbound(data(0, 1, STREAM_WINDOW as u32)).unwrap();
        let _ = boost.on_inbound(data(0, 1, 2 * MIB)).unwrap();
        let body: Vec<u8> = (0..2 * MIB).map(|i| i as u8).collect();
        boost.push_held(1, body.clone(), true);
        boost.on_outbound(window(0, 1, 4 * MIB));
        let out = release_all(&mut boost);
        let got = frames(&out);
        assert!(got.iter().all(|(h, _)| h.length as u64 <= MAX_RELEASE));
        let joined: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(joined, body);
        assert_eq!(got.last().unwrap().0.flags, FLAG_FIN);
        assert!(!boost.has_held());
    }

    #[test]
    fn a_frame_over_yamuxs_limit_is_held_and_released_in_pieces() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        earn(&mut boost, 1);
        boost.on_outbound(window(0, 1, 4 * MIB));
        let huge = data(0, 1, 2 * MIB);
        let decided = boost.on_inbound(huge).unwrap();
        let Inbound::Hold { len, .. } = decided else {
            panic!("{decided:?}")
        };
        assert_eq!(len, 2 * MIB);
        boost.push_held(1, vec![7; len as usize], false);
        let out = release_all(&mut boost);
        let got = frames(&out);
        assert!(got.iter().all(|(h, _)| u64::from(h.length) <= MAX_RELEASE));
        assert_eq!(
            got.iter().map(|(_, b)| b.len()).sum::<usize>(),
            2 * MIB as usize
        );
        // Beyond its credit, a large frame is a violation, never read into memory.
        let mut plain = Boost::new(None, 0, Budget::unlimited(), YamuxStats::default());
        plain.on_inbound(window(FLAG_SYN, 2, 0)).unwrap();
        assert!(plain.on_inbound(data(0, 2, 2 * MIB)).is_err());
    }

    /// One step a peer, yamux or the application can take.
    #[derive(Debug, Clone)]
    enum Step {
        Inbound(u8, u16, u32, u32),
        Outbound(u8, u16, u32, u32),
        Release,
        Drop(u32),
        Consume(u32, u32),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let kind = 0u8..4;
        let flags = prop_oneof![
            Just(0u16),
            Just(FLAG_SYN),
            Just(FLAG_ACK),
            Just(FLAG_FIN),
            Just(FLAG_RST),
            0u16..16
        ];
        let id = 0u32..4;
        let len = prop_oneof![0u32..70_000, Just(STREAM_WINDOW as u32), any::<u32>()];
        prop_oneof![
            (kind.clone(), flags.clone(), id.clone(), len.clone())
                .prop_map(|(k, f, i, l)| Step::Inbound(k, f, i, l)),
            (kind, flags, id.clone(), len).prop_map(|(k, f, i, l)| Step::Outbound(k, f, i, l)),
            Just(Step::Release),
            (id.clone(), 0u32..600_000).prop_map(|(i, n)| Step::Consume(i, n)),
            id.prop_map(Step::Drop),
        ]
    }

    proptest::proptest! {
        /// Whatever the frames, the boost never panics, never holds more for a stream
        /// than its credit allows, and releases only what yamux has room for.
        #[test]
        fn any_frame_sequence_keeps_the_bounds(steps in proptest::collection::vec(step(), 1..200)) {
            let mut boost = boost();
            for step in steps {
                match step {
                    Step::Inbound(kind, flags, id, len) => {
                        let header = FrameHeader::new(kind, flags, id, len);
                        let room = boost.streams.get(&id).map(|c| c.remote);
                        if let Ok(Inbound::Hold { stream, len, fin, .. }) = boost.on_inbound(header) {
                            // Only what the stream's credit allows is ever held.
                            proptest::prop_assert!(room.is_some_and(|r| u64::from(len) <= r));
                            boost.push_held(stream, vec![0; len as usize], fin);
                        }
                    }
                    Step::Outbound(kind, flags, id, len) => {
                        // Keep yamux's room (and what a test may hold) allocatable.
                        let len = if kind == TYPE_WINDOW_UPDATE { len.min(16 * MIB) } else { len };
                        boost.on_outbound(FrameHeader::new(kind, flags, id, len));
                    }
                    Step::Release => {
                        while let Some((header, body)) = boost.release() {
                            let header = FrameHeader::decode(&header);
                            proptest::prop_assert_eq!(header.length as usize, body.len());
                            proptest::prop_assert!(body.len() as u64 <= MAX_RELEASE);
                        }
                    }
                    Step::Drop(id) => boost.on_dropped(id),
                    Step::Consume(id, bytes) => boost.on_consumed(id, u64::from(bytes), Instant::now()),
                }
                for credit in boost.streams.values() {
                    let held: u64 = credit
                        .held
                        .iter()
                        .map(|h| match h {
                            Held::Data { body, start } => (body.len() - start) as u64,
                            Held::Fin => 0,
                        })
                        .sum();
                    proptest::prop_assert_eq!(held, credit.held_bytes);
                }
                let extra: u64 = boost.streams.values().map(|c| c.extra).sum();
                proptest::prop_assert_eq!(extra, boost.granted);
                // The remote never has more credit than the window it was given.
                for credit in boost.streams.values().filter(|c| !c.discarding() && !c.reset) {
                    proptest::prop_assert!(
                        credit.remote + credit.unread + credit.owed <= STREAM_WINDOW as u64 + credit.extra
                    );
                }
            }
        }
    }
}
