//! Splicing the two halves of a circuit: bytes from each stream are copied to the
//! other through one fixed buffer per direction, within the circuit's limits.
//!
//! A half-close travels across (EOF on one side closes the other side's write); the
//! circuit ends when both directions have. Going over the data limit in either
//! direction, or over the duration, resets both streams, as the spec asks; so does
//! a stop signal ([`splice_until`]: the relay evicted the circuit).

use futures::io::{AsyncRead, AsyncWrite};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use weft_upgrader::MuxedStream;

/// How a spliced circuit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceEnd {
    /// Both sides closed their writes; everything was delivered.
    Closed,
    /// A direction went over the data limit; both streams were reset.
    DataLimit,
    /// The duration limit passed; both streams were reset.
    DurationLimit,
    /// The relay stopped the circuit (evicted it to make room); both streams were
    /// reset.
    Stopped,
}

/// The bytes each direction carried, and how the circuit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceReport {
    /// How it ended.
    pub end: SpliceEnd,
    /// Bytes copied from the first stream to the second.
    pub a_to_b: u64,
    /// Bytes copied from the second stream to the first.
    pub b_to_a: u64,
}

/// One direction's copy state.
struct Direction {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    read_done: bool,
    closed: bool,
    copied: u64,
    limit: Option<u64>,
}

/// What one poll of a direction found.
enum Progress {
    /// Done: EOF read, everything written, the other side's write closed.
    Done,
    /// Over the data limit.
    OverLimit,
}

impl Direction {
    fn new(buffer: usize, limit: Option<u64>) -> Self {
        Direction {
            buf: vec![0u8; buffer.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
            read_done: false,
            closed: false,
            copied: 0,
            limit,
        }
    }

    /// How many bytes the next read may take: what the limit leaves, or one byte at
    /// the limit (to tell EOF from one byte too many).
    fn read_window(&self) -> usize {
        match self.limit {
            Some(limit) => {
                let left = limit.saturating_sub(self.copied);
                usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .clamp(1, self.buf.len())
            }
            None => self.buf.len(),
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<Progress>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.start == self.end && !self.read_done {
                let window = self.read_window();
                let n = match reader.as_mut().poll_read(cx, &mut self.buf[..window]) {
                    Poll::Ready(r) => r?,
                    Poll::Pending => {
                        // Nothing to read: push out what was written so far.
                        ready!(writer.as_mut().poll_flush(cx))?;
                        return Poll::Pending;
                    }
                };
                if n == 0 {
                    self.read_done = true;
                } else {
                    let total = self.copied + n as u64;
                    if self.limit.is_some_and(|limit| total > limit) {
                        return Poll::Ready(Ok(Progress::OverLimit));
                    }
                    self.copied = total;
                    self.start = 0;
                    self.end = n;
                }
            }
            while self.start < self.end {
                let n = ready!(writer
                    .as_mut()
                    .poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
            }
            if self.read_done {
                if !self.closed {
                    ready!(writer.as_mut().poll_close(cx))?;
                    self.closed = true;
                }
                return Poll::Ready(Ok(Progress::Done));
            }
        }
    }
}

/// Copies between `a` and `b` until both directions ended, a direction carried more
/// than `data_limit` bytes, or `duration_limit` passed. `buffer` bytes per direction
/// (the caller reserved them).
///
/// # Errors
///
/// An I/O error of either stream; both are reset then too.
pub async fn splice<A, B>(
    a: &mut A,
    b: &mut B,
    buffer: usize,
    data_limit: Option<u64>,
    duration_limit: Option<Duration>,
) -> io::Result<SpliceReport>
where
    A: MuxedStream + ?Sized,
    B: MuxedStream + ?Sized,
{
    splice_until(
        a,
        b,
        buffer,
        data_limit,
        duration_limit,
        std::future::pending(),
    )
    .await
}

/// [`splice`], also ended (both streams reset, [`SpliceEnd::Stopped`]) when `stop`
/// completes.
///
/// # Errors
///
/// An I/O error of either stream; both are reset then too.
pub async fn splice_until<A, B>(
    a: &mut A,
    b: &mut B,
    buffer: usize,
    data_limit: Option<u64>,
    duration_limit: Option<Duration>,
    stop: impl Future<Output = ()>,
) -> io::Result<SpliceReport>
where
    A: MuxedStream + ?Sized,
    B: MuxedStream + ?Sized,
{
    let mut stop = std::pin::pin!(stop);
    let mut forward = Direction::new(buffer, data_limit);
    let mut backward = Direction::new(buffer, data_limit);
    let mut forward_done = false;
    let mut backward_done = false;
    let deadline = async {
        match duration_limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut deadline = std::pin::pin!(deadline);
    let outcome = poll_fn(|cx| {
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(SpliceEnd::DurationLimit));
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(SpliceEnd::Stopped));
        }
        if !forward_done {
            match forward.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b)) {
                Poll::Ready(Ok(Progress::Done)) => forward_done = true,
                Poll::Ready(Ok(Progress::OverLimit)) => {
                    return Poll::Ready(Ok(SpliceEnd::DataLimit))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if !backward_done {
            match backward.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a)) {
                Poll::Ready(Ok(Progress::Done)) => backward_done = true,
                Poll::Ready(Ok(Progress::OverLimit)) => {
                    return Poll::Ready(Ok(SpliceEnd::DataLimit))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if forward_done && backward_done {
            Poll::Ready(Ok(SpliceEnd::Closed))
        } else {
            Poll::Pending
        }
    })
    .await;
    match outcome {
        Ok(SpliceEnd::Closed) => {}
        _ => {
            a.reset();
            b.reset();
        }
    }
    outcome.map(|end| SpliceReport {
        end,
        a_to_b: forward.copied,
        b_to_a: backward.copied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::stream_pair;
    use futures::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_cross_both_ways_and_half_closes_travel() {
        let (mut a_user, mut a_relay) = stream_pair().await;
        let (mut b_relay, mut b_user) = stream_pair().await;
        let relay =
            tokio::spawn(async move { splice(&mut *a_relay, &mut *b_relay, 7, None, None).await });
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let sent = payload.clone();
        let a = tokio::spawn(async move {
            a_user.write_all(&sent).await.unwrap();
            a_user.close().await.unwrap();
            let mut back = Vec::new();
            a_user.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        b_user.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, payload);
        b_user.write_all(b"thanks").await.unwrap();
        b_user.close().await.unwrap();
        assert_eq!(a.await.unwrap(), b"thanks");
        let report = relay.await.unwrap().unwrap();
        assert_eq!(report.end, SpliceEnd::Closed);
        assert_eq!((report.a_to_b, report.b_to_a), (100_000, 6));
    }

    #[tokio::test]
    async fn the_data_limit_resets_both_sides() {
        let (mut a_user, mut a_relay) = stream_pair().await;
        let (mut b_relay, mut b_user) = stream_pair().await;
        let relay = tokio::spawn(async move {
            splice(&mut *a_relay, &mut *b_relay, 4096, Some(1000), None).await
        });
        // Exactly the limit passes.
        a_user.write_all(&[1u8; 1000]).await.unwrap();
        let mut got = [0u8; 1000];
        b_user.read_exact(&mut got).await.unwrap();
        // One more byte ends the circuit.
        a_user.write_all(&[2u8]).await.unwrap();
        let report = relay.await.unwrap().unwrap();
        assert_eq!(report.end, SpliceEnd::DataLimit);
        assert_eq!(report.a_to_b, 1000);
        let mut rest = Vec::new();
        assert!(
            b_user.read_to_end(&mut rest).await.is_err(),
            "reset, not EOF"
        );
        assert!(rest.is_empty());
        let mut buf = [0u8; 1];
        assert!(a_user.read(&mut buf).await.is_err());
    }

    #[tokio::test]
    async fn a_stop_signal_resets_both_sides() {
        let (mut a_user, mut a_relay) = stream_pair().await;
        let (mut b_relay, mut b_user) = stream_pair().await;
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        let relay = tokio::spawn(async move {
            splice_until(&mut *a_relay, &mut *b_relay, 64, None, None, async {
                let _ = stopped.await;
            })
            .await
        });
        a_user.write_all(b"before").await.unwrap();
        let mut got = [0u8; 6];
        b_user.read_exact(&mut got).await.unwrap();
        stop.send(()).unwrap();
        let report = relay.await.unwrap().unwrap();
        assert_eq!(report.end, SpliceEnd::Stopped);
        assert_eq!(report.a_to_b, 6);
        let mut buf = [0u8; 1];
        assert!(a_user.read(&mut buf).await.is_err());
        assert!(b_user.read(&mut buf).await.is_err());
    }

    #[tokio::test]
    async fn the_duration_limit_resets_both_sides() {
        let (mut a_user, mut a_relay) = stream_pair().await;
        let (mut b_relay, mut b_user) = stream_pair().await;
        let started = std::time::Instant::now();
        let report = splice(
            &mut *a_relay,
            &mut *b_relay,
            64,
            None,
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap();
        assert_eq!(report.end, SpliceEnd::DurationLimit);
        assert!(started.elapsed() >= Duration::from_millis(200));
        let mut buf = [0u8; 1];
        assert!(a_user.read(&mut buf).await.is_err());
        assert!(b_user.read(&mut buf).await.is_err());
    }
}
