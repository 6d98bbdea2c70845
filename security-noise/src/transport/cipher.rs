//! The transport ciphers: ChaCha20-Poly1305 on each frame, in place.
//!
//! With [`CryptoBackend::Ring`](crate::CryptoBackend::Ring) the handshake's split keys
//! drive `ring::aead` directly (the Noise `ChaChaPoly` cipher: no associated data, a
//! 16-byte tag, a 12-byte nonce made of 4 zero bytes and the 64-bit frame counter in
//! little endian), encrypting and decrypting inside the frame buffer. With
//! [`CryptoBackend::RustCrypto`](crate::CryptoBackend::RustCrypto) snow's transport
//! state does the work; snow wants separate input and output buffers, so that path
//! goes through a scratch buffer.

use crate::framing::TAG_LEN;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::io;

/// One direction's key and frame counter.
///
/// The raw 32-byte key is kept rather than ring's key object (over 500 bytes, sized
/// for every AEAD ring supports): building the ChaCha20-Poly1305 key per frame costs
/// a few dozen nanoseconds, keeping it would cost every idle connection a kilobyte.
pub(crate) struct RingKey {
    key: [u8; 32],
    /// The nonce of the next frame. Noise reserves 2^64-1: reaching it is an error.
    nonce: u64,
}

impl Drop for RingKey {
    fn drop(&mut self) {
        self.key.fill(0);
        std::hint::black_box(&mut self.key);
    }
}

impl RingKey {
    fn new(key: &[u8; 32]) -> Self {
        RingKey {
            key: *key,
            nonce: 0,
        }
    }

    /// The key and the nonce for the next frame; the counter advances only when the
    /// frame is accepted (see [`RingKey::advance`]).
    fn next(&self) -> io::Result<(LessSafeKey, Nonce)> {
        if self.nonce == u64::MAX {
            return Err(io::Error::other(
                "noise: nonce space exhausted (2^64-1 frames); the connection must end",
            ));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &self.key)
            .map_err(|_| io::Error::other("noise: invalid ChaCha20-Poly1305 key"))?;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.nonce.to_le_bytes());
        Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce)))
    }

    fn advance(&mut self) {
        self.nonce += 1;
    }
}

/// The ciphers of an established Noise session, one key per direction.
pub(crate) enum FrameCipher {
    /// `ring::aead` with the raw split keys.
    Ring {
        /// Encrypts what we send.
        send: RingKey,
        /// Decrypts what we receive.
        receive: RingKey,
    },
    /// snow's transport state (the RustCrypto backend).
    Snow {
        /// The session.
        state: Box<snow::TransportState>,
        /// Output of snow's copying encrypt/decrypt; released with the frame buffers.
        scratch: Vec<u8>,
    },
}

fn rejected(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("noise frame rejected: {error}"),
    )
}

impl FrameCipher {
    /// The ring ciphers from the raw split: `initiator_to_responder` and
    /// `responder_to_initiator` keys, assigned by our role.
    pub(crate) fn ring(
        initiator: bool,
        initiator_to_responder: &[u8; 32],
        responder_to_initiator: &[u8; 32],
    ) -> Self {
        let (send, receive) = if initiator {
            (initiator_to_responder, responder_to_initiator)
        } else {
            (responder_to_initiator, initiator_to_responder)
        };
        FrameCipher::Ring {
            send: RingKey::new(send),
            receive: RingKey::new(receive),
        }
    }

    /// Wraps snow's transport state.
    pub(crate) fn snow(state: snow::TransportState) -> Self {
        FrameCipher::Snow {
            state: Box::new(state),
            scratch: Vec::new(),
        }
    }

    /// Encrypts `buf[plaintext_start..]` in place and appends the tag.
    pub(crate) fn seal(&mut self, buf: &mut Vec<u8>, plaintext_start: usize) -> io::Result<()> {
        let plaintext_len = buf.len().saturating_sub(plaintext_start);
        match self {
            FrameCipher::Ring { send, .. } => {
                let (key, nonce) = send.next()?;
                let plaintext = buf.get_mut(plaintext_start..).unwrap_or_default();
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::empty(), plaintext)
                    .map_err(|_| io::Error::other("noise encryption failed"))?;
                send.advance();
                buf.extend_from_slice(tag.as_ref());
            }
            FrameCipher::Snow { state, scratch } => {
                grow_zeroed(scratch, plaintext_len + TAG_LEN);
                let plaintext = buf.get(plaintext_start..).unwrap_or_default();
                let len = state.write_message(plaintext, scratch).map_err(|error| {
                    io::Error::other(format!("noise encryption failed: {error}"))
                })?;
                buf.truncate(plaintext_start);
                buf.extend_from_slice(scratch.get(..len).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Decrypts the frame body `frame` (ciphertext and tag) in place; the plaintext is
    /// `frame[..n]` for the returned `n`.
    pub(crate) fn open(&mut self, frame: &mut [u8]) -> io::Result<usize> {
        match self {
            FrameCipher::Ring { receive, .. } => {
                let (key, nonce) = receive.next()?;
                let len = key
                    .open_in_place(nonce, Aad::empty(), frame)
                    .map_err(|_| rejected("authentication failed"))?
                    .len();
                receive.advance();
                Ok(len)
            }
            FrameCipher::Snow { state, scratch } => {
                grow_zeroed(scratch, frame.len());
                let len = state.read_message(frame, scratch).map_err(rejected)?;
                let plaintext = scratch.get(..len).unwrap_or_default();
                frame
                    .get_mut(..len)
                    .ok_or_else(|| rejected("plaintext longer than the frame"))?
                    .copy_from_slice(plaintext);
                Ok(len)
            }
        }
    }

    /// Frees the scratch buffer (snow path), when no transfer is running.
    pub(crate) fn release_scratch(&mut self) {
        if let FrameCipher::Snow { scratch, .. } = self {
            *scratch = Vec::new();
        }
    }

    /// Bytes held by the scratch buffer.
    #[cfg(test)]
    pub(crate) fn scratch_capacity(&self) -> usize {
        match self {
            FrameCipher::Ring { .. } => 0,
            FrameCipher::Snow { scratch, .. } => scratch.capacity(),
        }
    }

    /// Sets the next send and receive nonces (ring path), to test nonce exhaustion.
    #[cfg(test)]
    pub(crate) fn set_nonces(&mut self, next_send: u64, next_receive: u64) {
        if let FrameCipher::Ring { send, receive } = self {
            send.nonce = next_send;
            receive.nonce = next_receive;
        }
    }
}

/// Makes `buf` at least `len` long, zeroing only the new part.
pub(crate) fn grow_zeroed(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (FrameCipher, FrameCipher) {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        (
            FrameCipher::ring(true, &a, &b),
            FrameCipher::ring(false, &a, &b),
        )
    }

    #[test]
    fn ring_frames_round_trip_in_place() {
        let (mut initiator, mut responder) = pair();
        for message in [&b""[..], b"hello", &[7u8; 1000]] {
            let mut buf = vec![9, 9];
            buf.extend_from_slice(message);
            initiator.seal(&mut buf, 2).unwrap();
            assert_eq!(buf.len(), 2 + message.len() + TAG_LEN);
            let n = responder.open(&mut buf[2..]).unwrap();
            assert_eq!(&buf[2..2 + n], message);
        }
    }

    #[test]
    fn a_replayed_or_tampered_frame_is_rejected() {
        let (mut initiator, mut responder) = pair();
        let mut buf = b"secret".to_vec();
        initiator.seal(&mut buf, 0).unwrap();
        let mut replay = buf.clone();
        let mut tampered = buf.clone();
        tampered[0] ^= 1;
        assert!(responder.open(&mut tampered).is_err());
        assert_eq!(responder.open(&mut buf).unwrap(), 6);
        assert!(responder.open(&mut replay).is_err());
    }

    #[test]
    fn the_last_nonce_is_never_used() {
        let (mut initiator, mut responder) = pair();
        initiator.set_nonces(u64::MAX - 1, 0);
        responder.set_nonces(0, u64::MAX - 1);
        let mut buf = b"last".to_vec();
        initiator.seal(&mut buf, 0).unwrap();
        assert_eq!(responder.open(&mut buf).unwrap(), 4);
        let mut next = b"one too many".to_vec();
        assert!(initiator.seal(&mut next, 0).is_err());
        assert!(responder.open(&mut [0u8; 32]).is_err());
    }
}
