//! The relay server in the host: the hop handler, the stop streams it opens,
//! reservations dropped when their peer disconnects, and the connection manager tag
//! of the peers holding one.

use super::{is_relayed, RESERVATION_TAG, RESERVATION_TAG_VALUE};
use crate::admission;
use crate::events::Event;
use crate::handlers::{Handler, HandlerOptions};
use crate::host::Inner;
use crate::stream::Stream;
use libp2p_identity::PeerId;
use std::sync::{Arc, Weak};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;
use weft_relay::{
    HopOutcome, HopSource, Relay, RelayConfig, StopOpener, HOP_PROTOCOL, STOP_PROTOCOL,
};
use weft_upgrader::BoxedStream;

/// Registers the hop handler and the task that forgets the reservations of peers
/// that disconnected.
pub(crate) fn install(inner: &Arc<Inner>, config: RelayConfig) {
    let relay = Arc::new(Relay::new(inner.keypair.clone(), config));
    let weak = Arc::downgrade(inner);
    let serving = relay.clone();
    let handler: Handler = Arc::new(move |stream: Stream| {
        let (relay, weak) = (serving.clone(), weak.clone());
        Box::pin(async move { serve(weak, relay, stream).await })
    });
    inner.add_exact_handler(HOP_PROTOCOL.to_string(), handler, HandlerOptions::default());
    let mut events = inner.events.subscribe();
    let shutdown = inner.shutdown.clone();
    let weak = Arc::downgrade(inner);
    inner.tasks.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                e = events.recv() => e,
            };
            match event {
                Ok(Event::Disconnected { peer, .. }) => {
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.connection_to(&peer).is_none() {
                        relay.peer_disconnected(&peer);
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
}

async fn serve(weak: Weak<Inner>, relay: Arc<Relay>, stream: Stream) {
    let Some(inner) = weak.upgrade() else { return };
    let Some(conn) = inner.connection(&stream.connection()) else {
        return debug!(peer = %stream.peer(), "hop stream of a connection that is gone");
    };
    let source = HopSource {
        peer: stream.peer(),
        // IPv6 by its /64, as the connection manager counts it: one subscriber's
        // addresses are one address for the relay's per-IP caps and fair shares.
        ip: crate::dial::classify::leading_ip(&conn.remote_addr)
            .map(|ip| weft_connmgr::ip_group(ip, weft_connmgr::DEFAULT_IPV6_PREFIX_LEN)),
        relayed: is_relayed(&conn.remote_addr),
        relay_addrs: inner
            .listen_addrs()
            .into_iter()
            .filter(|a| !is_relayed(a))
            .collect(),
        budget: admission::budget(&conn.scope),
    };
    drop((inner, conn));
    let opener = HostStopOpener {
        inner: weak.clone(),
    };
    match relay.serve_hop(Box::new(stream), source, &opener).await {
        Ok(outcome) => {
            debug!(?outcome, "hop stream served");
            if let HopOutcome::Reserved { peer, evicted, .. } = outcome {
                let Some(inner) = weak.upgrade() else { return };
                // Tags go with the peer's last connection; an evicted peer loses it
                // at once.
                inner
                    .policy
                    .tag_peer(peer, RESERVATION_TAG, RESERVATION_TAG_VALUE);
                if let Some(evicted) = evicted {
                    inner.policy.untag_peer(&evicted, RESERVATION_TAG);
                }
            }
        }
        Err(e) => debug!(error = %e, "hop stream ended with an error"),
    }
}

/// Opens stop streams over the host's open connections (never dialing).
struct HostStopOpener {
    inner: Weak<Inner>,
}

#[async_trait::async_trait]
impl StopOpener for HostStopOpener {
    async fn open_stop(&self, target: PeerId) -> std::io::Result<BoxedStream> {
        let inner = self
            .inner
            .upgrade()
            .ok_or_else(|| std::io::Error::other("the host is gone"))?;
        let conn = inner.connection_to(&target).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "no connection to the target",
            )
        })?;
        let stream = inner
            .open_stream_on(&conn, &[STOP_PROTOCOL])
            .await
            .map_err(std::io::Error::other)?;
        Ok(Box::new(stream))
    }
}
