//! The window boost: extra stream credit granted beside the `yamux` crate, and the
//! bytes that use it held until yamux has room for them.
//!
//! [`Boost`] is a pure state machine; the [`Tap`](crate::tap::Tap) feeds it every
//! frame header that goes by and does the I/O. Per stream it mirrors the receive
//! window yamux itself has granted (256 KiB at the start, plus every window update
//! yamux writes, minus every data byte handed to yamux) and records the extra credit
//! it granted on top. A data frame that fits yamux's window goes straight through;
//! one that does not is held, and released (split if need be) as yamux's window
//! grows. A FIN that arrives behind held bytes waits behind them, so yamux sees each
//! stream exactly as the remote sent it, only later.
//!
//! The remote never has more credit than yamux's window plus the extra granted, so
//! what is held for a stream never exceeds its extra credit plus yamux's window; a
//! frame that would break that is a flow-control violation and fails the connection.
//!
//! See [`WindowBoost`](crate::WindowBoost) for what is granted when.

use crate::config::{WindowBoost, STREAM_WINDOW};
use crate::frame_scan::{
    FrameHeader, FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, HEADER_LEN, TYPE_DATA, TYPE_PING,
    TYPE_WINDOW_UPDATE,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A grant smaller than this is not worth a frame: on a fast local link the
/// bandwidth-delay product is below it and nothing extra is granted.
pub(crate) const MIN_GRANT: u64 = STREAM_WINDOW as u64;

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
    /// stream was dropped on our side and nobody will read them.
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

/// The credit of one stream.
#[derive(Debug)]
struct Credit {
    /// yamux's own receive window: what yamux can take now.
    yamux: u64,
    /// The extra credit granted so far.
    extra: u64,
    /// What waits for yamux's window, in order.
    held: VecDeque<Held>,
    /// Body bytes in `held`.
    held_bytes: u64,
    /// We sent FIN.
    local_fin: bool,
    /// yamux was handed the remote's FIN.
    remote_fin: bool,
    /// The stream was dropped on our side: nothing will read it any more.
    dropped: bool,
    /// The stream is in [`Boost::ready`].
    queued: bool,
}

impl Credit {
    fn new(yamux: u64) -> Self {
        Credit {
            yamux,
            extra: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            local_fin: false,
            remote_fin: false,
            dropped: false,
            queued: false,
        }
    }
}

/// The window boost of one connection.
#[derive(Debug)]
pub(crate) struct Boost {
    settings: WindowBoost,
    /// The smallest round-trip time measured from yamux's pings.
    rtt: Option<Duration>,
    /// yamux's ping in flight: its opaque value and when it left.
    ping: Option<(u32, Instant)>,
    streams: HashMap<u32, Credit>,
    /// Extra credit granted to the streams in `streams`.
    granted: u64,
    /// Window updates to write: stream and delta.
    grants: VecDeque<(u32, u32)>,
    /// Streams that may be able to release held bytes.
    ready: VecDeque<u32>,
}

impl Boost {
    /// A boost with `settings`, nothing granted yet.
    pub(crate) fn new(settings: WindowBoost) -> Self {
        Boost {
            settings,
            rtt: None,
            ping: None,
            streams: HashMap::new(),
            granted: 0,
            grants: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// The round-trip time measured so far.
    #[cfg(test)]
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
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
        !self.grants.is_empty()
    }

    /// The next window update to write.
    pub(crate) fn next_grant(&mut self) -> Option<[u8; HEADER_LEN]> {
        let (stream, delta) = self.grants.pop_front()?;
        tracing::trace!(stream, delta, "granting extra stream window");
        Some(FrameHeader::new(TYPE_WINDOW_UPDATE, 0, stream, delta).encode())
    }

    /// Records a frame header yamux (or the tap) wrote.
    pub(crate) fn on_outbound(&mut self, header: FrameHeader) {
        match header.frame_type {
            TYPE_PING if header.has(FLAG_SYN) => {
                self.ping = Some((header.length, Instant::now()));
            }
            TYPE_DATA | TYPE_WINDOW_UPDATE => {
                let id = header.stream_id;
                if header.has(FLAG_SYN) {
                    self.open(id);
                }
                if header.has(FLAG_RST) {
                    self.remove(id);
                    return;
                }
                let Some(credit) = self.streams.get_mut(&id) else {
                    return;
                };
                if header.frame_type == TYPE_WINDOW_UPDATE {
                    credit.yamux = credit.yamux.saturating_add(u64::from(header.length));
                    if !credit.held.is_empty() && !credit.queued {
                        credit.queued = true;
                        self.ready.push_back(id);
                    }
                }
                if header.has(FLAG_FIN) {
                    credit.local_fin = true;
                    self.close_if_done(id);
                }
            }
            _ => {}
        }
    }

    /// Decides what happens to an inbound frame, given its header.
    pub(crate) fn on_inbound(&mut self, header: FrameHeader) -> Result<Inbound, FlowViolation> {
        let id = header.stream_id;
        let deliver = Inbound::Deliver(header.encode());
        match header.frame_type {
            TYPE_PING => {
                if header.has(FLAG_ACK) {
                    self.on_pong(header.length);
                }
                Ok(deliver)
            }
            TYPE_WINDOW_UPDATE => {
                if header.has(FLAG_SYN) {
                    self.open(id);
                }
                if header.has(FLAG_RST) {
                    self.remove(id);
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
                    self.close_if_done(id);
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
            TYPE_DATA => self.on_inbound_data(header),
            _ => Ok(deliver),
        }
    }

    fn on_inbound_data(&mut self, header: FrameHeader) -> Result<Inbound, FlowViolation> {
        let id = header.stream_id;
        let len = u64::from(header.length);
        let fin = header.has(FLAG_FIN);
        let deliver = Inbound::Deliver(header.encode());
        if header.has(FLAG_RST) {
            self.remove(id);
            return Ok(deliver);
        }
        if header.has(FLAG_SYN) {
            // yamux checks the first body against the 256 KiB initial window itself.
            self.open(id);
            if let Some(credit) = self.streams.get_mut(&id) {
                credit.yamux = credit.yamux.saturating_sub(len);
                credit.remote_fin |= fin;
            }
            return Ok(deliver);
        }
        let Some(credit) = self.streams.get_mut(&id) else {
            return Ok(deliver);
        };
        if len > YAMUX_MAX_BODY {
            return Ok(deliver);
        }
        if credit.held.is_empty() && len <= credit.yamux {
            credit.yamux -= len;
            if fin {
                credit.remote_fin = true;
                self.close_if_done(id);
            }
            return Ok(deliver);
        }
        let limit = credit.extra.saturating_add(credit.yamux);
        if credit.held_bytes.saturating_add(len) > limit {
            return Err(FlowViolation {
                stream: id,
                received: credit.held_bytes.saturating_add(len),
                credit: limit,
            });
        }
        // Flags other than FIN (an ACK) concern our sending side: they go at once.
        let other = header.flags & !FLAG_FIN;
        let first =
            (other != 0).then(|| FrameHeader::new(TYPE_WINDOW_UPDATE, other, id, 0).encode());
        if credit.dropped {
            let first = if fin {
                credit.remote_fin = true;
                self.close_if_done(id);
                Some(FrameHeader::new(TYPE_DATA, header.flags, id, 0).encode())
            } else {
                first
            };
            return Ok(Inbound::Discard {
                first,
                len: header.length,
            });
        }
        Ok(Inbound::Hold {
            first,
            stream: id,
            len: header.length,
            fin,
        })
    }

    /// Stores the body of a frame [`Inbound::Hold`] asked to hold.
    pub(crate) fn push_held(&mut self, stream: u32, body: Vec<u8>, fin: bool) {
        let Some(credit) = self.streams.get_mut(&stream) else {
            // Reset or dropped meanwhile: nobody will read it.
            return;
        };
        if credit.dropped {
            if fin {
                credit.remote_fin = true;
                self.close_if_done(stream);
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
                self.close_if_done(id);
            }
            let flags = if fin { FLAG_FIN } else { 0 };
            // A body is at most MAX_RELEASE long, so its length fits a u32.
            let header = FrameHeader::new(TYPE_DATA, flags, id, take as u32);
            return Some((header.encode(), body));
        }
        None
    }

    /// The stream was dropped on our side: what is held for it is dropped too, and
    /// whatever the remote still sends beyond yamux's window is discarded.
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
        self.close_if_done(stream);
    }

    /// A new stream, in either direction.
    fn open(&mut self, id: u32) {
        self.streams
            .entry(id)
            .or_insert_with(|| Credit::new(STREAM_WINDOW as u64));
        self.top_up(id);
    }

    /// The extra window a stream should have, by the measured round-trip time.
    fn target(&self) -> u64 {
        let Some(rtt) = self.rtt else {
            return 0;
        };
        let product = rtt.as_secs_f64() * self.settings.link_rate as f64;
        // `as` saturates for floats out of range.
        (product as u64).min(u64::from(self.settings.max_per_stream))
    }

    /// Grants `id` what it lacks of the target, within the connection's budget.
    fn top_up(&mut self, id: u32) {
        let target = self.target();
        let budget = (self.settings.max_per_connection as u64).saturating_sub(self.granted);
        let Some(credit) = self.streams.get_mut(&id) else {
            return;
        };
        if credit.dropped || credit.remote_fin {
            return;
        }
        let delta = target.saturating_sub(credit.extra).min(budget);
        if delta < MIN_GRANT {
            return;
        }
        // `target` <= max_per_stream, a u32.
        let delta32 = u32::try_from(delta).unwrap_or(u32::MAX);
        credit.extra += u64::from(delta32);
        self.granted += u64::from(delta32);
        self.grants.push_back((id, delta32));
    }

    fn on_pong(&mut self, value: u32) {
        let Some((sent, at)) = self.ping else {
            return;
        };
        if sent != value {
            return;
        }
        self.ping = None;
        // The smallest sample: a busy scheduler only ever delays a pong, so the
        // minimum is the best estimate of the path's own round trip.
        let sample = at.elapsed();
        let rtt = self.rtt.map_or(sample, |known| known.min(sample));
        tracing::trace!(?sample, ?rtt, "round-trip time from yamux ping");
        self.rtt = Some(rtt);
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.top_up(id);
        }
    }

    /// Forgets a stream once both sides finished it and nothing is held.
    fn close_if_done(&mut self, id: u32) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|c| c.local_fin && c.remote_fin && c.held.is_empty());
        if done {
            self.remove(id);
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

    const MIB: u32 = 1 << 20;

    fn boost() -> Boost {
        let mut boost = Boost::new(WindowBoost {
            link_rate: 1 << 30,
            max_per_stream: 8 * MIB,
            max_per_connection: 20 * MIB as usize,
        });
        boost.set_rtt(Duration::from_secs(1));
        boost
    }

    fn data(flags: u16, id: u32, len: u32) -> FrameHeader {
        FrameHeader::new(TYPE_DATA, flags, id, len)
    }

    fn window(flags: u16, id: u32, delta: u32) -> FrameHeader {
        FrameHeader::new(TYPE_WINDOW_UPDATE, flags, id, delta)
    }

    fn grants(boost: &mut Boost) -> Vec<FrameHeader> {
        std::iter::from_fn(|| boost.next_grant())
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
    fn grants_on_open_in_both_directions_capped_by_the_connection_budget() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        boost.on_inbound(window(FLAG_SYN, 2, 0)).unwrap();
        boost.on_inbound(data(FLAG_SYN, 4, 10)).unwrap();
        let granted = grants(&mut boost);
        let deltas: Vec<_> = granted.iter().map(|h| (h.stream_id, h.length)).collect();
        // 8 + 8 + the 4 MiB left of the 20 MiB budget.
        assert_eq!(deltas, vec![(1, 8 * MIB), (2, 8 * MIB), (4, 4 * MIB)]);
        assert!(granted.iter().all(|h| h.frame_type == TYPE_WINDOW_UPDATE));
        // A reset returns the stream's grant to the budget.
        boost.on_inbound(data(FLAG_RST, 1, 0)).unwrap();
        boost.on_outbound(window(FLAG_SYN, 3, 0));
        assert_eq!(grants(&mut boost)[0].length, 8 * MIB);
    }

    #[test]
    fn nothing_is_granted_before_a_round_trip_is_measured_or_on_a_fast_link() {
        let mut boost = Boost::new(WindowBoost::default());
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        assert!(!boost.has_grants());
        // yamux's ping and its answer 50 µs later: 1 GiB/s x 50 µs < 256 KiB.
        boost.on_outbound(FrameHeader::new(TYPE_PING, FLAG_SYN, 0, 7));
        boost
            .on_inbound(FrameHeader::new(TYPE_PING, FLAG_ACK, 0, 7))
            .unwrap();
        assert!(boost.rtt().is_some());
        assert!(!boost.has_grants());
        // A later, slower answer does not raise the estimate: delays only inflate.
        boost.on_outbound(FrameHeader::new(TYPE_PING, FLAG_SYN, 0, 8));
        boost.ping = Some((8, Instant::now() - Duration::from_millis(60)));
        boost
            .on_inbound(FrameHeader::new(TYPE_PING, FLAG_ACK, 0, 8))
            .unwrap();
        assert!(boost.rtt().unwrap() < Duration::from_millis(60));
        assert!(!boost.has_grants());
        // On a long path the first answer tops up the streams already open.
        let mut boost = Boost::new(WindowBoost::default());
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        boost.on_outbound(FrameHeader::new(TYPE_PING, FLAG_SYN, 0, 3));
        boost.ping = Some((3, Instant::now() - Duration::from_millis(60)));
        boost
            .on_inbound(FrameHeader::new(TYPE_PING, FLAG_ACK, 0, 3))
            .unwrap();
        let granted = grants(&mut boost);
        assert_eq!(granted.len(), 1);
        assert!(granted[0].length >= 60 * MIB && granted[0].length <= 64 * MIB);
        // An answer to a ping yamux did not send changes nothing.
        boost
            .on_inbound(FrameHeader::new(TYPE_PING, FLAG_ACK, 0, 99))
            .unwrap();
    }

    #[test]
    fn fitting_frames_pass_and_the_rest_is_held_then_released_in_order() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
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
        // Our own FIN ends the stream.
        boost.on_outbound(data(FLAG_FIN, 1, 0));
        assert_eq!(boost.tracked(), 0);
    }

    #[test]
    fn sending_beyond_the_granted_credit_is_a_violation() {
        let mut boost = boost();
        boost.on_inbound(window(FLAG_SYN, 2, 0)).unwrap();
        let limit = STREAM_WINDOW as u32 + 8 * MIB;
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
        let mut plain = Boost::new(WindowBoost::default());
        plain.on_inbound(window(FLAG_SYN, 2, 0)).unwrap();
        plain.on_inbound(data(0, 2, STREAM_WINDOW as u32)).unwrap();
        assert!(plain.on_inbound(data(0, 2, 1)).is_err());
    }

    #[test]
    fn an_ack_on_a_held_frame_goes_at_once() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
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
    fn a_frame_yamux_would_refuse_goes_to_yamux_unread() {
        let mut boost = boost();
        boost.on_outbound(window(FLAG_SYN, 1, 0));
        boost.on_inbound(data(0, 1, STREAM_WINDOW as u32)).unwrap();
        let huge = data(0, 1, 2 * MIB);
        assert_eq!(
            boost.on_inbound(huge).unwrap(),
            Inbound::Deliver(huge.encode())
        );
    }

    /// One step a peer, yamux or the application can take.
    #[derive(Debug, Clone)]
    enum Step {
        Inbound(u8, u16, u32, u32),
        Outbound(u8, u16, u32, u32),
        Release,
        Drop(u32),
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
                        if let Ok(Inbound::Hold { stream, len, fin, .. }) = boost.on_inbound(header) {
                            proptest::prop_assert!(u64::from(len) <= YAMUX_MAX_BODY);
                            boost.push_held(stream, vec![0; len as usize], fin);
                        }
                    }
                    Step::Outbound(kind, flags, id, len) => {
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
            }
        }
    }
}
