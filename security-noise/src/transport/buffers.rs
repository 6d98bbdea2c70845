//! The per-direction frame buffers of a [`NoiseStream`](super::NoiseStream): sized to
//! what is in flight, released when idle.

use crate::framing::{LEN_PREFIX, MAX_FRAME_LEN, MAX_PLAINTEXT_LEN, TAG_LEN};
use std::io;

/// The smallest read buffer: room for several small frames per socket read.
pub(crate) const MIN_READ_BUFFER: usize = 2048;

/// The largest frame on the wire, length prefix included.
const MAX_WIRE_FRAME: usize = LEN_PREFIX + MAX_FRAME_LEN;

/// Received bytes: ciphertext not yet decrypted, and plaintext not yet handed out.
///
/// Frames are decrypted in place: the plaintext of the last frame lies in
/// `buf[plain_start..plain_end]`, the ciphertext still to decrypt in `buf[start..end]`.
/// The socket is only read into the buffer once the plaintext is handed out.
#[derive(Default)]
pub(crate) struct ReadBuffer {
    /// Its length is the usable (initialised) size; empty when released.
    buf: Vec<u8>,
    plain_start: usize,
    plain_end: usize,
    start: usize,
    end: usize,
    /// The wire size of the last frame: a released buffer comes back at this size, so
    /// a transfer that pauses between frames reads the next one in a single go.
    warm_len: usize,
    /// The socket reported end of file.
    pub(crate) eof: bool,
}

impl ReadBuffer {
    /// Copies decrypted bytes into `out`; `None` when there are none.
    pub(crate) fn take_plaintext(&mut self, out: &mut [u8]) -> Option<usize> {
        let available = self
            .buf
            .get(self.plain_start..self.plain_end)
            .filter(|plaintext| !plaintext.is_empty())?;
        let n = available.len().min(out.len());
        out.get_mut(..n)?.copy_from_slice(available.get(..n)?);
        self.plain_start += n;
        Some(n)
    }

    /// The announced length of the next frame, once its prefix is buffered.
    fn announced_len(&self) -> Option<usize> {
        let prefix = self.buf.get(self.start..self.end)?.get(..LEN_PREFIX)?;
        Some(usize::from(u16::from_be_bytes([prefix[0], prefix[1]])))
    }

    /// The body (ciphertext and tag) of the next frame, if it is complete; consumes it.
    /// Call [`ReadBuffer::decrypted`] once it is decrypted in place.
    pub(crate) fn next_frame(&mut self) -> Option<&mut [u8]> {
        let len = self.announced_len()?;
        let body_start = self.start + LEN_PREFIX;
        let body_end = body_start + len;
        if body_end > self.end {
            return None;
        }
        self.start = body_end;
        self.warm_len = LEN_PREFIX + len;
        self.plain_start = body_start;
        self.plain_end = body_start;
        self.buf.get_mut(body_start..body_end)
    }

    /// The frame returned by [`ReadBuffer::next_frame`] decrypted to `len` bytes.
    pub(crate) fn decrypted(&mut self, len: usize) {
        self.plain_end = self.plain_start + len;
    }

    /// Nothing is buffered: no plaintext, no ciphertext.
    pub(crate) fn is_empty(&self) -> bool {
        self.plain_start == self.plain_end && self.start == self.end
    }

    /// The free space to read the socket into: enough, from the buffered part of the
    /// next frame, to complete it. Grows the buffer to the announced frame length.
    /// Only called when no plaintext is waiting and the next frame is incomplete.
    pub(crate) fn space_for_next_frame(&mut self) -> &mut [u8] {
        let needed = self
            .announced_len()
            .map_or(LEN_PREFIX, |len| LEN_PREFIX + len);
        self.plain_start = 0;
        self.plain_end = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.start + needed > self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if needed > self.buf.len() {
            let warm = if self.buf.is_empty() {
                self.warm_len
            } else {
                0
            };
            self.buf.resize(needed.max(MIN_READ_BUFFER).max(warm), 0);
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// The socket read `n` bytes into the space from [`ReadBuffer::space_for_next_frame`].
    pub(crate) fn filled(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
        }
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Frees the buffer. Only when [`ReadBuffer::is_empty`].
    pub(crate) fn release(&mut self) {
        debug_assert!(self.is_empty());
        self.buf = Vec::new();
        self.plain_start = 0;
        self.plain_end = 0;
        self.start = 0;
        self.end = 0;
    }

    /// The buffer is freed.
    pub(crate) fn is_released(&self) -> bool {
        self.buf.capacity() == 0
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Bytes to send: plaintext being coalesced into a frame, or a sealed frame being
/// written out.
///
/// Coalescing, `buf` is `[length prefix placeholder][plaintext]`; sealed, it is the
/// whole wire frame, `buf[sent..]` still to write.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    buf: Vec<u8>,
    sealed: bool,
    sent: usize,
}

impl WriteBuffer {
    /// The sealed frame's bytes not yet written, if any.
    pub(crate) fn unsent(&self) -> Option<&[u8]> {
        if !self.sealed {
            return None;
        }
        self.buf.get(self.sent..).filter(|rest| !rest.is_empty())
    }

    /// `n` more bytes of the sealed frame were written.
    pub(crate) fn sent(&mut self, n: usize) {
        self.sent += n;
        if self.sent >= self.buf.len() {
            self.buf.clear();
            self.sealed = false;
            self.sent = 0;
        }
    }

    /// Appends as much of `data` as the frame has room for; returns how much. Only
    /// when no sealed frame is pending.
    pub(crate) fn append(&mut self, data: &[u8]) -> usize {
        debug_assert!(!self.sealed);
        let used = self.buf.len().max(LEN_PREFIX);
        let room = MAX_PLAINTEXT_LEN - (used - LEN_PREFIX);
        let n = room.min(data.len());
        let needed = used + n + TAG_LEN;
        if needed > self.buf.capacity() {
            // Grow to what is pending, doubling for runs of small writes, never past
            // one wire frame.
            let target = needed
                .max(2 * self.buf.capacity())
                .min(MAX_WIRE_FRAME)
                .max(needed);
            self.buf.reserve_exact(target - self.buf.len());
        }
        if self.buf.is_empty() {
            self.buf.extend_from_slice(&[0; LEN_PREFIX]);
        }
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        n
    }

    /// The frame holds a full frame of plaintext.
    pub(crate) fn is_full(&self) -> bool {
        !self.sealed && self.buf.len() == LEN_PREFIX + MAX_PLAINTEXT_LEN
    }

    /// Plaintext is waiting for a flush or more writes.
    pub(crate) fn has_plaintext(&self) -> bool {
        !self.sealed && self.buf.len() > LEN_PREFIX
    }

    /// The frame: plaintext from [`LEN_PREFIX`] on, to be sealed in place.
    pub(crate) fn frame_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The plaintext was sealed in place (tag appended): writes the length prefix
    /// and makes the frame pending.
    pub(crate) fn sealed(&mut self) -> io::Result<()> {
        let len = self.buf.len().saturating_sub(LEN_PREFIX);
        let prefix = u16::try_from(len).map_err(|_| io::Error::other("noise frame too long"))?;
        if let Some(slot) = self.buf.get_mut(..LEN_PREFIX) {
            slot.copy_from_slice(&prefix.to_be_bytes());
        }
        self.sealed = true;
        self.sent = 0;
        Ok(())
    }

    /// Frees the buffer if nothing is pending in it.
    pub(crate) fn release(&mut self) {
        if !self.sealed && self.buf.len() <= LEN_PREFIX {
            self.buf = Vec::new();
        }
    }

    /// The buffer is freed.
    pub(crate) fn is_released(&self) -> bool {
        self.buf.capacity() == 0
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
