//! A remote that sends arbitrary yamux frames to a weft yamux connection with the
//! window boost on: the frames are built from the input (8 bytes make one frame; data
//! bodies are generated, so a few bytes of input can stand for a large frame), and the
//! application reads, drops or resets the streams it accepts. Nothing may panic,
//! whatever the frames; the run ends when nothing can make progress any more.

#![no_main]

use futures::executor::LocalPool;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use futures::task::LocalSpawnExt;
use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use weft_muxer_yamux::{WindowBoost, Yamux, YamuxConfig};
use weft_upgrader::{Role, StreamMuxer};

/// The bytes of all frames together are kept under this.
const MAX_BYTES: usize = 8 << 20;

/// The remote: its frames, then EOF. What we write to it is dropped.
struct Remote {
    bytes: Vec<u8>,
    pos: usize,
}

impl AsyncRead for Remote {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let rest = &self.bytes[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Remote {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn header(kind: u8, flags: u16, stream: u32, length: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[1] = kind;
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..8].copy_from_slice(&stream.to_be_bytes());
    h[8..12].copy_from_slice(&length.to_be_bytes());
    h
}

/// The frames the input stands for. yamux's first ping (value 0) is answered first,
/// so the boost knows a round trip and grants.
fn frames(data: &[u8]) -> Vec<u8> {
    let mut out = header(2, 0x2, 0, 0).to_vec();
    for chunk in data.chunks_exact(8) {
        let kind = chunk[0] % 4;
        let flags = u16::from(chunk[1] & 0x0f);
        // Client streams are odd; a few even and zero ids too.
        let stream = u32::from(chunk[2] % 10);
        let length = u32::from_be_bytes([0, chunk[3] & 0x0f, chunk[4], chunk[5]]);
        out.extend_from_slice(&header(kind, flags, stream, length));
        // A data frame's body follows, unless the input asks for a truncated one.
        if kind == 0 && chunk[6] & 0x80 == 0 {
            let body = (length as usize).min(MAX_BYTES.saturating_sub(out.len()));
            out.resize(out.len() + body, chunk[7]);
        }
        if out.len() >= MAX_BYTES {
            break;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&policy, frames_in)) = data.split_last() else {
        return;
    };
    let boost = WindowBoost {
        link_rate: u64::MAX,
        max_per_stream: 1 << 20,
        max_per_connection: 4 << 20,
    };
    let config = YamuxConfig::default().with_window_boost(Some(boost));
    let Ok(yamux) = Yamux::with_config(config) else {
        return;
    };
    let remote = Remote {
        bytes: frames(frames_in),
        pos: 0,
    };
    let Ok(muxed) = yamux.upgrade(Box::new(remote), Role::Responder) else {
        return;
    };
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let _ = spawner.spawn_local(async move {
        let _ = muxed.driver.await;
    });
    let connection = muxed.connection;
    let app = spawner.clone();
    let _ = spawner.spawn_local(async move {
        let mut n = 0u32;
        while let Ok(mut stream) = connection.accept_stream().await {
            // Per stream, two bits of the policy: read it all, drop it, or reset it.
            match (policy >> (2 * (n % 4))) & 0b11 {
                0 => drop(stream),
                1 => stream.reset(),
                _ => {
                    let _ = app.spawn_local(async move {
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink).await;
                    });
                }
            }
            n += 1;
        }
    });
    pool.run_until_stalled();
});
