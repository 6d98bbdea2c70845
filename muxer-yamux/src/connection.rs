//! The handle applications use to open, accept and close streams.

use crate::driver::Command;
use crate::shared::Shared;
use crate::stream::YamuxStream;
use futures::channel::{mpsc, oneshot};
use futures::lock::Mutex;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use weft_upgrader::{BoxedStream, MuxedConnection, MuxerError};

/// A yamux connection handle: talks to the driver through channels.
pub(crate) struct YamuxConnection {
    commands: mpsc::Sender<Command>,
    /// The bounded inbound backlog. The async lock only serialises concurrent
    /// `accept_stream` callers; it guards a channel, never the network.
    inbound: Mutex<mpsc::Receiver<YamuxStream>>,
    shared: Arc<Shared>,
}

impl YamuxConnection {
    /// A handle on the driver's channels.
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        inbound: mpsc::Receiver<YamuxStream>,
        shared: Arc<Shared>,
    ) -> Self {
        YamuxConnection {
            commands,
            inbound: Mutex::new(inbound),
            shared,
        }
    }
}

#[async_trait::async_trait]
impl MuxedConnection for YamuxConnection {
    async fn open_stream(&self) -> Result<BoxedStream, MuxerError> {
        if self.shared.is_closed() {
            return Err(MuxerError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .clone()
            .send(Command::Open(reply))
            .await
            .map_err(|_| MuxerError::Closed)?;
        let stream = answer.await.map_err(|_| MuxerError::Closed)??;
        Ok(Box::new(stream))
    }

    async fn accept_stream(&self) -> Result<BoxedStream, MuxerError> {
        let mut inbound = self.inbound.lock().await;
        match inbound.next().await {
            Some(stream) => Ok(Box::new(stream)),
            None => Err(match self.shared.end() {
                Some(crate::shared::End::Failed(reason)) => MuxerError::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    reason,
                )),
                _ => MuxerError::Closed,
            }),
        }
    }

    async fn close(&self) -> Result<(), MuxerError> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .clone()
            .send(Command::Close(reply))
            .await
            .is_err()
        {
            return Ok(()); // the driver is gone: the connection is already closed
        }
        answer.await.unwrap_or(Ok(()))
    }

    fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn remote_went_away(&self) -> bool {
        self.shared.remote_went_away()
    }
}
