//! Collects what a child process writes on a pipe, keeping a bounded tail.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Keep at most this many bytes of a child's output (the end of it).
const MAX_KEPT: usize = 64 * 1024;

/// A shared, bounded buffer filled by a background task from a pipe.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutputTail {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl OutputTail {
    /// Starts draining `pipe` into a new buffer (so the child never blocks on a full pipe).
    pub(crate) fn drain<R: AsyncRead + Unpin + Send + 'static>(mut pipe: R) -> Self {
        let tail = Self::default();
        let bytes = Arc::clone(&tail.bytes);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let Ok(mut kept) = bytes.lock() else { break };
                        kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                        let excess = kept.len().saturating_sub(MAX_KEPT);
                        kept.drain(..excess);
                    }
                }
            }
        });
        tail
    }

    /// The kept output, lossily decoded.
    pub(crate) fn text(&self) -> String {
        self.bytes
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}
