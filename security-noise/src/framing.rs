//! The libp2p Noise wire format: a 2-byte big-endian length, then the Noise message.

use crate::error::NoiseError;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The length prefix of every frame.
pub const LEN_PREFIX: usize = 2;
/// The largest Noise message a frame carries.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;
/// The Poly1305 tag appended to every encrypted payload.
pub const TAG_LEN: usize = 16;
/// The largest plaintext one transport frame carries (65519).
pub const MAX_PLAINTEXT_LEN: usize = MAX_FRAME_LEN - TAG_LEN;

/// Writes the Noise message in `frame[LEN_PREFIX..LEN_PREFIX + len]`, prefixed with its
/// length, and flushes.
pub(crate) async fn write_handshake_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    frame: &mut [u8],
    len: usize,
) -> std::io::Result<()> {
    let prefix = u16::try_from(len)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too long"))?;
    let total = LEN_PREFIX + len;
    let frame = frame
        .get_mut(..total)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "short buffer"))?;
    frame[..LEN_PREFIX].copy_from_slice(&prefix.to_be_bytes());
    io.write_all(frame).await?;
    io.flush().await
}

/// Why reading a handshake frame failed.
#[derive(Debug)]
pub(crate) enum ReadFrameError {
    Io(std::io::Error),
    Noise(NoiseError),
}

/// Reads one frame of at most `max` bytes into `buf` and returns its length.
pub(crate) async fn read_handshake_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut [u8],
    max: usize,
    message: u8,
) -> Result<usize, ReadFrameError> {
    let mut prefix = [0u8; LEN_PREFIX];
    io.read_exact(&mut prefix)
        .await
        .map_err(ReadFrameError::Io)?;
    let len = usize::from(u16::from_be_bytes(prefix));
    let Some(target) = buf.get_mut(..len).filter(|_| len <= max) else {
        return Err(ReadFrameError::Noise(
            NoiseError::HandshakeMessageTooLarge { message, len, max },
        ));
    };
    io.read_exact(target).await.map_err(ReadFrameError::Io)?;
    Ok(len)
}
