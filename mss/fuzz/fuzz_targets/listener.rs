//! Fuzzes the listener with arbitrary peer bytes followed by EOF: it must finish with
//! a result (never panic, never hang).
#![no_main]

use futures::io::{AsyncRead, AsyncWrite};
use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Reads from a fixed input, then EOF; swallows writes.
struct Scripted<'a>(&'a [u8]);

impl AsyncRead for Scripted<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = self.0.len().min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let matcher = weft_mss::Protocols::new().with_exact("/ok");
    let _ = futures::executor::block_on(weft_mss::listener_select(Scripted(data), &matcher));
});
