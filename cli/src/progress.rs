//! Live progress of a transfer on a terminal: bytes, rate and time left (indicatif).
//!
//! Drawn on stderr, and only when stderr is a terminal: piped or redirected, nothing
//! is drawn, so scripts and the machine-readable output on stdout are unchanged.

use futures::io::{AsyncRead, AsyncWrite};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The bar's layout: label, bar, bytes so far of the total, rate, time left.
const TEMPLATE: &str =
    "{prefix:>8} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";

/// The progress of one transfer of a known size; draws nothing unless stderr is a
/// terminal.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A transfer of `total` bytes called `label`, drawn if stderr is a terminal.
    pub fn new(label: &str, total: u64) -> Self {
        Self::drawn_if(std::io::stderr().is_terminal(), label, total)
    }

    /// A transfer drawn on stderr when `draw` is true, counted but never drawn
    /// otherwise.
    pub fn drawn_if(draw: bool, label: &str, total: u64) -> Self {
        let target = if draw {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// Counts `n` more bytes.
    pub fn add(&self, n: usize) {
        self.bar.inc(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// The bytes counted so far.
    #[cfg(test)]
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Whether anything is drawn.
    #[cfg(test)]
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Ends the transfer, clearing the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A stream whose bytes read and written are counted on a [`Progress`].
pub struct Counted<'a, S> {
    inner: S,
    progress: &'a Progress,
}

impl<'a, S> Counted<'a, S> {
    /// Counts what goes through `inner` on `progress`.
    pub fn new(inner: S, progress: &'a Progress) -> Self {
        Counted { inner, progress }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.progress.add(n);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.progress.add(n);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_both_directions_without_drawing_when_told_not_to() {
        let progress = Progress::drawn_if(false, "perf", 10);
        assert!(!progress.is_drawn());
        let mut sink = Vec::new();
        Counted::new(&mut sink, &progress)
            .write_all(b"abcd")
            .await
            .unwrap();
        let mut got = Vec::new();
        Counted::new(futures::io::Cursor::new(b"efghij".to_vec()), &progress)
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert_eq!(
            (sink.as_slice(), got.as_slice()),
            (&b"abcd"[..], &b"efghij"[..])
        );
        assert_eq!(progress.position(), 10);
        progress.finish();
    }
}
