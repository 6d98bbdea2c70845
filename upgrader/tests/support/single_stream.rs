//! A "muxer" that carries exactly one stream: the whole secured channel. Enough to
//! test the upgrade pipeline without a real multiplexer. For tests only.

use futures::channel::oneshot;
use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use weft_upgrader::{
    BoxedIo, BoxedStream, Muxed, MuxedConnection, MuxedStream, MuxerError, Role, StreamMuxer,
};

/// Hands the secured channel out as the connection's single stream: the initiator
/// gets it from `open_stream`, the responder from `accept_stream`.
pub struct SingleStream {
    protocol_id: String,
}

impl SingleStream {
    pub fn new() -> Self {
        Self::with_id("/weft-test/single-stream/1.0.0")
    }

    pub fn with_id(protocol_id: &str) -> Self {
        SingleStream {
            protocol_id: protocol_id.to_owned(),
        }
    }
}

struct Handle {
    role: Role,
    io: Mutex<Option<BoxedIo>>,
    closed: AtomicBool,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl StreamMuxer for SingleStream {
    fn protocol_id(&self) -> &str {
        &self.protocol_id
    }

    fn upgrade(&self, io: BoxedIo, role: Role) -> Result<Muxed, MuxerError> {
        let (stop, stopped) = oneshot::channel();
        let handle = Arc::new(Handle {
            role,
            io: Mutex::new(Some(io)),
            closed: AtomicBool::new(false),
            stop: Mutex::new(Some(stop)),
        });
        Ok(Muxed {
            connection: handle,
            driver: Box::pin(async move {
                let _ = stopped.await;
                Ok(())
            }),
        })
    }
}

impl Handle {
    fn take(&self, wanted: Role) -> Result<BoxedStream, MuxerError> {
        if self.role != wanted || self.closed.load(Ordering::SeqCst) {
            return Err(MuxerError::Closed);
        }
        let io = self.io.lock().unwrap().take().ok_or(MuxerError::Closed)?;
        Ok(Box::new(Whole(io)))
    }
}

#[async_trait::async_trait]
impl MuxedConnection for Handle {
    async fn open_stream(&self) -> Result<BoxedStream, MuxerError> {
        self.take(Role::Initiator)
    }

    async fn accept_stream(&self) -> Result<BoxedStream, MuxerError> {
        self.take(Role::Responder)
    }

    async fn close(&self) -> Result<(), MuxerError> {
        self.closed.store(true, Ordering::SeqCst);
        self.io.lock().unwrap().take();
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn remote_went_away(&self) -> bool {
        false
    }
}

/// The one stream: the secured channel itself.
struct Whole(BoxedIo);

impl MuxedStream for Whole {
    fn reset(&mut self) {}
}

impl AsyncRead for Whole {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Whole {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
