//! rust-libp2p's `libp2p-yamux` as a reference peer, driven by one task.

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use libp2p_core::muxing::StreamMuxerExt;
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use std::io;
use std::task::Poll;
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncReadCompatExt;

type OpenReply = oneshot::Sender<io::Result<libp2p_yamux::Stream>>;

/// A libp2p-yamux connection driven by a spawned task.
pub struct Libp2pPeer {
    open: mpsc::Sender<OpenReply>,
    inbound: mpsc::Receiver<libp2p_yamux::Stream>,
}

impl Libp2pPeer {
    /// Upgrades `tcp` with libp2p-yamux's default config; `initiator` = yamux client.
    pub async fn spawn(tcp: TcpStream, initiator: bool) -> Self {
        let io = tcp.compat();
        let config = libp2p_yamux::Config::default();
        let mut muxer = if initiator {
            config.upgrade_outbound(io, "/yamux/1.0.0").await.unwrap()
        } else {
            config.upgrade_inbound(io, "/yamux/1.0.0").await.unwrap()
        };
        let (open, mut open_rx) = mpsc::channel::<OpenReply>(16);
        let (mut inbound_tx, inbound) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut pending: Option<OpenReply> = None;
            let mut requests_open = true;
            futures::future::poll_fn(|cx| loop {
                let mut progress = false;
                if pending.is_none() && requests_open {
                    match open_rx.poll_next_unpin(cx) {
                        Poll::Ready(Some(reply)) => {
                            pending = Some(reply);
                            progress = true;
                        }
                        Poll::Ready(None) => requests_open = false,
                        Poll::Pending => {}
                    }
                }
                if let Some(reply) = pending.take() {
                    match muxer.poll_outbound_unpin(cx) {
                        Poll::Ready(result) => {
                            let _ = reply.send(result.map_err(io::Error::from));
                            progress = true;
                        }
                        Poll::Pending => pending = Some(reply),
                    }
                }
                match muxer.poll_inbound_unpin(cx) {
                    Poll::Ready(Ok(stream)) => {
                        let _ = inbound_tx.try_send(stream);
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
                if !progress {
                    return Poll::Pending;
                }
            })
            .await;
        });
        Libp2pPeer { open, inbound }
    }

    /// Opens an outbound stream.
    pub async fn open(&mut self) -> io::Result<libp2p_yamux::Stream> {
        let (tx, rx) = oneshot::channel();
        self.open
            .clone()
            .send(tx)
            .await
            .map_err(|_| io::Error::other("libp2p peer gone"))?;
        rx.await.map_err(|_| io::Error::other("libp2p peer gone"))?
    }

    /// Waits for an inbound stream.
    pub async fn accept(&mut self) -> Option<libp2p_yamux::Stream> {
        self.inbound.next().await
    }
}
