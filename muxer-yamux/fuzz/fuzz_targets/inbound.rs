//! A remote that sends arbitrary yamux frames to a weft yamux connection with window
//! growth on and a small memory budget (so that streams are shed): the frames are
//! built from the input (8 bytes make one frame; data
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use weft_muxer_yamux::{WindowBoost, Yamux, YamuxConfig};
use weft_upgrader::{Budget, BudgetDenied, MemoryBudget, Priority, Role, StreamMuxer};

/// A 2 MiB budget shared as go-libp2p's resource manager shares a scope; checks
/// that nothing is given back that was not taken.
#[derive(Default)]
struct Small {
    used: AtomicUsize,
}

impl MemoryBudget for Small {
    fn try_reserve(&self, bytes: usize, priority: Priority) -> Result<(), BudgetDenied> {
        let share = priority.share_of(2 << 20) as usize;
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used.saturating_add(bytes) <= share).then_some(used + bytes)
            })
            .map(|_| ())
            .map_err(|used| BudgetDenied {
                requested: bytes,
                reason: format!("{used} in use").into(),
            })
    }

    fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::SeqCst);
        assert!(before >= bytes, "released more than was reserved");
    }
}

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
        growth_factor: 8,
    };
    let config = YamuxConfig::default().with_window_boost(Some(boost));
    let Ok(yamux) = Yamux::with_config(config) else {
        return;
    };
    let remote = Remote {
        bytes: frames(frames_in),
        pos: 0,
    };
    let budget = Arc::new(Small::default());
    let Ok(muxed) = yamux.upgrade_with_budget(
        Box::new(remote),
        Role::Responder,
        Budget::new(budget.clone()),
    ) else {
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
    drop(pool);
    assert_eq!(budget.used.load(Ordering::SeqCst), 0, "memory not given back");
});
