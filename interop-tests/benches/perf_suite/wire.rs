//! The application side of the protocols, shared by both implementations so that only
//! the stacks differ: the perf client (`/perf/1.0.0`, spec in `specs/perf.md`), the
//! echo client and server. The perf server is weft's own `weft_host::perf::serve`,
//! which is generic over any futures-io stream and therefore serves rust-libp2p's
//! streams as well.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;

/// One perf exchange with weft's own client (`weft_host::perf::run_client`, generic over
/// any futures-io stream): asks for `download` bytes, uploads `upload` bytes,
/// half-closes, then reads exactly `download` bytes.
pub async fn perf<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    upload: u64,
    download: u64,
) -> io::Result<()> {
    weft_host::perf::run_client(stream, upload, download)
        .await
        .map(|_| ())
        .map_err(io::Error::other)
}

/// A 1-byte echo: write a byte, read it back, half-close, read EOF.
pub async fn echo_once<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<()> {
    echo_byte(stream).await?;
    stream.close().await?;
    let mut rest = [0u8; 1];
    match stream.read(&mut rest).await? {
        0 => Ok(()),
        _ => Err(io::Error::other("echo: bytes after the echo")),
    }
}

/// Writes one byte and reads it back, leaving the stream open.
pub async fn echo_byte<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<()> {
    stream.write_all(&[42]).await?;
    stream.flush().await?;
    let mut back = [0u8; 1];
    stream.read_exact(&mut back).await?;
    if back != [42] {
        return Err(io::Error::other("echo: wrong byte"));
    }
    Ok(())
}

/// Serves an echo stream: sends back what arrives, until EOF, then half-closes.
pub async fn serve_echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<()> {
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
        stream.flush().await?;
    }
    stream.close().await
}
