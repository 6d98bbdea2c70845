//! A passive reader of yamux frame headers in a byte stream.
//!
//! The scanner does not buffer frame bodies: it keeps the 12 header bytes it has seen
//! so far and a count of body bytes still to skip. Its memory is constant whatever the
//! peer sends, and it never panics: a malformed stream is rejected by the `yamux`
//! crate, which reads the same bytes.

/// The size of a yamux frame header.
pub(crate) const HEADER_LEN: usize = 12;

/// Frame type: data.
pub(crate) const TYPE_DATA: u8 = 0x0;
/// Frame type: window update.
pub(crate) const TYPE_WINDOW_UPDATE: u8 = 0x1;
/// Frame type: ping.
pub(crate) const TYPE_PING: u8 = 0x2;
/// Frame type: go-away.
pub(crate) const TYPE_GO_AWAY: u8 = 0x3;

/// Flag: half-close.
pub(crate) const FLAG_FIN: u16 = 0x4;
/// Flag: reset.
pub(crate) const FLAG_RST: u16 = 0x8;
/// Flag: new stream.
pub(crate) const FLAG_SYN: u16 = 0x1;
/// Flag: acknowledges a new stream (or answers a ping).
pub(crate) const FLAG_ACK: u16 = 0x2;

/// A decoded yamux frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// The frame type (data, window update, ping, go-away).
    pub(crate) frame_type: u8,
    /// The flags (SYN, ACK, FIN, RST).
    pub(crate) flags: u16,
    /// The stream the frame is for (0 for the session).
    pub(crate) stream_id: u32,
    /// Body length (data), window delta, ping value or go-away code.
    pub(crate) length: u32,
}

impl FrameHeader {
    /// Decodes the 12 header bytes.
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let [_version, frame_type, f0, f1, s0, s1, s2, s3, l0, l1, l2, l3] = *bytes;
        FrameHeader {
            frame_type,
            flags: u16::from_be_bytes([f0, f1]),
            stream_id: u32::from_be_bytes([s0, s1, s2, s3]),
            length: u32::from_be_bytes([l0, l1, l2, l3]),
        }
    }

    /// A header of yamux version 0.
    pub(crate) fn new(frame_type: u8, flags: u16, stream_id: u32, length: u32) -> Self {
        FrameHeader {
            frame_type,
            flags,
            stream_id,
            length,
        }
    }

    /// Encodes the 12 header bytes.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let [f0, f1] = self.flags.to_be_bytes();
        let [s0, s1, s2, s3] = self.stream_id.to_be_bytes();
        let [l0, l1, l2, l3] = self.length.to_be_bytes();
        [0, self.frame_type, f0, f1, s0, s1, s2, s3, l0, l1, l2, l3]
    }

    /// Encodes a body-less data frame that resets `stream_id`.
    pub(crate) fn reset(stream_id: u32) -> [u8; HEADER_LEN] {
        FrameHeader::new(TYPE_DATA, FLAG_RST, stream_id, 0).encode()
    }

    /// Whether the frame carries `flag`.
    pub(crate) fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// Follows the frame boundaries of one direction of a yamux connection.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    header: [u8; HEADER_LEN],
    header_filled: usize,
    body_left: u64,
}

impl FrameScanner {
    /// Whether the bytes seen so far end exactly at a frame boundary.
    pub(crate) fn at_boundary(&self) -> bool {
        self.header_filled == 0 && self.body_left == 0
    }

    /// Consumes `bytes`, calling `on_header` for every complete header.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut on_header: impl FnMut(FrameHeader)) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let skip = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                bytes = bytes.get(skip..).unwrap_or_default();
                self.body_left -= skip as u64;
                continue;
            }
            let want = HEADER_LEN - self.header_filled;
            let take = want.min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            if let Some(slot) = self
                .header
                .get_mut(self.header_filled..self.header_filled + take)
            {
                slot.copy_from_slice(head);
            }
            self.header_filled += take;
            bytes = rest;
            if self.header_filled == HEADER_LEN {
                self.header_filled = 0;
                let header = FrameHeader::decode(&self.header);
                if header.frame_type == TYPE_DATA {
                    self.body_left = u64::from(header.length);
                }
                on_header(header);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: u8, flags: u16, id: u32, body: &[u8]) -> Vec<u8> {
        let len = if frame_type == TYPE_DATA {
            body.len() as u32
        } else {
            7
        };
        let mut out = vec![0, frame_type];
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn finds_headers_across_arbitrary_splits() {
        let mut bytes = frame(TYPE_DATA, FLAG_SYN, 1, b"hello world");
        bytes.extend(frame(0x1, FLAG_FIN, 3, b""));
        bytes.extend(frame(TYPE_DATA, FLAG_RST, 5, &[9; 40]));
        bytes.extend(frame(TYPE_GO_AWAY, 0, 0, b""));
        for chunk in 1..bytes.len() {
            let mut scanner = FrameScanner::default();
            let mut seen = Vec::new();
            for piece in bytes.chunks(chunk) {
                scanner.feed(piece, |h| seen.push(h));
            }
            assert!(scanner.at_boundary());
            let ids: Vec<_> = seen.iter().map(|h| (h.frame_type, h.stream_id)).collect();
            assert_eq!(
                ids,
                vec![(0, 1), (1, 3), (0, 5), (3, 0)],
                "chunk size {chunk}"
            );
            assert!(seen[0].has(FLAG_SYN) && seen[1].has(FLAG_FIN) && seen[2].has(FLAG_RST));
        }
    }

    #[test]
    fn reset_frame_round_trips() {
        let bytes = FrameHeader::reset(0xdead_beef);
        let header = FrameHeader::decode(&bytes);
        assert_eq!(header.frame_type, TYPE_DATA);
        assert_eq!(header.flags, FLAG_RST);
        assert_eq!(header.stream_id, 0xdead_beef);
        assert_eq!(header.length, 0);
    }

    #[test]
    fn huge_length_does_not_panic_or_allocate() {
        let mut scanner = FrameScanner::default();
        let mut bytes = vec![0, TYPE_DATA, 0, 0, 0, 0, 0, 1];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        scanner.feed(&bytes, |_| {});
        scanner.feed(&[0; 1000], |_| panic!("inside a body"));
        assert!(!scanner.at_boundary());
    }

    #[test]
    fn not_at_boundary_mid_header() {
        let mut scanner = FrameScanner::default();
        scanner.feed(&[0, 1, 0], |_| {});
        assert!(!scanner.at_boundary());
    }
}
