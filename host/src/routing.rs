//! Stream negotiation and handler routing: opening an outbound stream (lazily when
//! there is one choice), accepting a connection's inbound streams, negotiating each
//! against the handler registry (with its slots and the resource manager's protocol
//! scope), and handing it to its handler in a task of its own.

use crate::admission::lock_scope;
use crate::book;
use crate::conn::ConnState;
use crate::error::StreamError;
use crate::handlers::{Admitted, Handler, HandlerOptions, Handlers, InboundMatcher, MatchFn};
use crate::host::Inner;
use crate::stream::{Stream, StreamTracker};
use futures::io::{AsyncRead, AsyncWrite};
use libp2p_identity::PeerId;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::debug;
use weft_connmgr::Direction;
use weft_mss::{Negotiated, NegotiationError, Version};
use weft_resource_manager::StreamScope;
use weft_upgrader::BoxedStream;

/// Inbound perf streams one peer may have open at once.
const PERF_STREAMS_PER_PEER: usize = 2;

/// What an outbound stream proposes, and how: the one id the peerstore knows the peer
/// supports, or the only id offered, lazily (0-RTT); otherwise every id, in order,
/// waiting for each answer.
pub(crate) fn proposals<'a>(
    known: Option<&'a str>,
    protocols: &[&'a str],
) -> (Vec<&'a str>, Version) {
    match known {
        Some(p) => (vec![p], Version::V1Lazy),
        None if protocols.len() == 1 => (protocols.to_vec(), Version::V1Lazy),
        None => (protocols.to_vec(), Version::V1),
    }
}

/// Why an inbound stream got no handler.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InboundRefusal {
    /// Negotiation failed (no handler for any proposal, over a slot or a limit, or a
    /// malformed exchange).
    #[error("inbound negotiation failed: {0}")]
    Negotiation(#[from] NegotiationError),
    /// Negotiation did not finish in time.
    #[error("inbound negotiation timed out after {0:?}")]
    Timeout(Duration),
    /// multistream-select agreed on an id that no handler admitted.
    #[error("negotiated {0}, which no handler admitted")]
    NotAdmitted(String),
}

/// An inbound stream routed to its handler: the agreed id, the stream, the handler
/// with the slots it took, and the stream's scope (now in the protocol's scope).
pub(crate) struct Routed<R> {
    pub(crate) protocol: String,
    pub(crate) io: Negotiated<R>,
    pub(crate) admitted: Admitted,
    pub(crate) scope: Option<StreamScope>,
}

/// Negotiates an inbound stream of `peer` against the handlers. The matcher takes the
/// handler's and the peer's slots, and moves the stream's scope to the protocol, when
/// it accepts a proposal: a stream over its slot or its protocol's limits gets `na`.
pub(crate) async fn route_inbound<R: AsyncRead + AsyncWrite + Unpin>(
    handlers: &Handlers,
    peer: PeerId,
    scope: Option<StreamScope>,
    raw: R,
    timeout: Duration,
) -> Result<Routed<R>, InboundRefusal> {
    let matcher = InboundMatcher::new(handlers, peer, scope);
    let (protocol, io) = tokio::time::timeout(timeout, weft_mss::listener_select(raw, &matcher))
        .await
        .map_err(|_| InboundRefusal::Timeout(timeout))??;
    let Some((admitted, scope)) = matcher.into_admitted(&protocol) else {
        return Err(InboundRefusal::NotAdmitted(protocol));
    };
    Ok(Routed {
        protocol,
        io,
        admitted,
        scope,
    })
}

impl Inner {
    /// What a new stream reports its end and its bytes to. `handler` is the
    /// registration key of the handler serving `protocol`, when the caller knows it;
    /// otherwise it is looked up (only when an observer wants it).
    fn tracker(
        &self,
        conn: &ConnState,
        protocol: &str,
        handler: Option<&str>,
        direction: Direction,
    ) -> StreamTracker {
        let policy = self.policy.clone();
        let id = conn.id;
        StreamTracker {
            events: self.events.clone(),
            open_streams: conn.open_streams.clone(),
            activity: conn.activity.clone(),
            on_count_change: Arc::new(move |n| policy.stream_count_changed(id, n)),
            meter: self.hooks.stream_opened(
                protocol,
                || match handler {
                    Some(key) => Some(key.to_string()),
                    None => self.handlers.find(protocol).map(|e| e.id),
                },
                direction,
            ),
        }
    }

    /// Opens a stream on `conn` and negotiates one of `protocols` (see [`proposals`]).
    pub(crate) async fn open_stream_on(
        &self,
        conn: &ConnState,
        protocols: &[&str],
    ) -> Result<Stream, StreamError> {
        self.open_negotiated(conn, protocols, false).await
    }

    /// [`open_stream_on`](Self::open_stream_on) for a request that is safe to run
    /// twice: on a connection still in its handshake it leaves as early (0-RTT,
    /// replayable) data ([`MuxedConnection::open_early_stream`]).
    ///
    /// [`MuxedConnection::open_early_stream`]: weft_upgrader::MuxedConnection::open_early_stream
    pub(crate) async fn open_early_stream_on(
        &self,
        conn: &ConnState,
        protocols: &[&str],
    ) -> Result<Stream, StreamError> {
        self.open_negotiated(conn, protocols, true).await
    }

    async fn open_negotiated(
        &self,
        conn: &ConnState,
        protocols: &[&str],
        early: bool,
    ) -> Result<Stream, StreamError> {
        let known = book::first_supported(&self.writer, &conn.peer, protocols).await;
        let (proposals, version) = proposals(known.as_deref(), protocols);
        let mut scope =
            lock_scope(&conn.scope).open_stream(weft_resource_manager::Direction::Outbound)?;
        let raw = if early {
            conn.muxed.open_early_stream().await?
        } else {
            conn.muxed.open_stream().await?
        };
        let timeout = self.config.negotiation_timeout;
        let (protocol, negotiated) =
            tokio::time::timeout(timeout, weft_mss::dialer_select(raw, proposals, version))
                .await
                .map_err(|_| StreamError::Timeout(timeout))??;
        scope.set_protocol(&protocol)?;
        let tracker = self.tracker(conn, &protocol, None, Direction::Outbound);
        Ok(Stream::new(
            negotiated,
            protocol,
            conn.peer,
            conn.id,
            Direction::Outbound,
            tracker,
            scope,
        ))
    }

    /// Registers a handler for an exact id and tells connected peers (identify push).
    pub(crate) fn add_exact_handler(
        self: &Arc<Self>,
        protocol: String,
        handler: Handler,
        options: HandlerOptions,
    ) {
        self.handlers.insert_exact(protocol, handler, options);
        self.push_identify_to_all();
    }

    /// Registers a handler chosen by a match function and tells connected peers.
    pub(crate) fn add_match_handler(
        self: &Arc<Self>,
        id: String,
        matches: MatchFn,
        handler: Handler,
    ) {
        self.handlers
            .insert_match(id, matches, handler, HandlerOptions::default());
        self.push_identify_to_all();
    }

    /// Removes a handler (and tells connected peers); true if one was registered.
    pub(crate) fn remove_handler(self: &Arc<Self>, protocol: &str) -> bool {
        let removed = self.handlers.remove(protocol);
        if removed {
            self.push_identify_to_all();
        }
        removed
    }

    /// Serves `/perf/1.0.0`.
    pub(crate) fn enable_perf(self: &Arc<Self>) {
        // A replayed perf request costs bandwidth, not state: it may run in 0-RTT.
        let options = HandlerOptions::default()
            .with_max_inbound_streams_per_peer(Some(PERF_STREAMS_PER_PEER))
            .with_replayable(true);
        let handler: Handler = Arc::new(|mut stream: Stream| {
            Box::pin(async move {
                if let Err(e) = crate::perf::serve(&mut stream).await {
                    debug!(error = %e, "serving perf failed");
                }
            })
        });
        self.add_exact_handler(crate::perf::PROTOCOL.to_string(), handler, options);
    }
}

/// Accepts the inbound streams of one connection and hands each to its handler.
pub(crate) async fn accept_streams(weak: Weak<Inner>, conn: Arc<ConnState>) {
    loop {
        let raw = tokio::select! {
            _ = conn.closed.cancelled() => break,
            r = conn.muxed.accept_stream() => match r {
                Ok(s) => s,
                Err(e) => {
                    debug!(conn = %conn.id, error = %e, "no more inbound streams");
                    break;
                }
            },
        };
        let Some(inner) = weak.upgrade() else { break };
        let c = conn.clone();
        let weak = weak.clone();
        inner.tasks.spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            let timeout = inner.config.negotiation_timeout;
            let scope =
                match lock_scope(&c.scope).open_stream(weft_resource_manager::Direction::Inbound) {
                    Ok(scope) => scope,
                    // Dropping the raw stream resets it.
                    Err(e) => {
                        inner.hooks.inbound_stream_refused();
                        return debug!(conn = %c.id, error = %e, "inbound stream refused");
                    }
                };
            // Early (0-RTT) data may be a replay: only a handler that declares its
            // requests safe to run twice gets it before the handshake completes.
            let early = raw.is_early();
            let routed = route_inbound(&inner.handlers, c.peer, Some(scope), raw, timeout).await;
            let (protocol, io, admitted, scope) = match routed {
                Ok(Routed {
                    protocol,
                    io,
                    admitted,
                    scope: Some(scope),
                }) => (protocol, io, admitted, scope),
                Ok(Routed { protocol, .. }) => {
                    inner.hooks.inbound_stream_refused();
                    return debug!(conn = %c.id, %protocol, "inbound stream admitted without a scope");
                }
                Err(e) => {
                    inner.hooks.inbound_stream_refused();
                    return debug!(conn = %c.id, error = %e, "inbound stream refused");
                }
            };
            if early && !admitted.entry.replayable {
                drop(inner);
                debug!(conn = %c.id, %protocol, "early stream waits for the handshake");
                if !c.muxed.handshake_complete().await {
                    return debug!(conn = %c.id, %protocol, "handshake failed; early stream dropped");
                }
                let Some(again) = weak.upgrade() else { return };
                return serve_routed(again, &c, protocol, io, admitted, scope).await;
            }
            serve_routed(inner, &c, protocol, io, admitted, scope).await;
        });
    }
}

/// Hands a negotiated inbound stream to its handler, in the calling task, without
/// keeping the host alive while the handler runs.
async fn serve_routed(
    inner: Arc<Inner>,
    c: &ConnState,
    protocol: String,
    io: Negotiated<BoxedStream>,
    admitted: Admitted,
    scope: StreamScope,
) {
    let tracker = inner.tracker(c, &protocol, Some(&admitted.entry.id), Direction::Inbound);
    let stream = Stream::new(
        io,
        protocol,
        c.peer,
        c.id,
        Direction::Inbound,
        tracker,
        scope,
    );
    drop(inner);
    (admitted.entry.handler)(stream).await;
    drop(admitted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    #[test]
    fn one_choice_or_a_known_one_is_proposed_lazily() {
        assert_eq!(proposals(None, &["/a"]), (vec!["/a"], Version::V1Lazy));
        assert_eq!(
            proposals(None, &["/a", "/b"]),
            (vec!["/a", "/b"], Version::V1)
        );
        assert_eq!(
            proposals(Some("/b"), &["/a", "/b"]),
            (vec!["/b"], Version::V1Lazy)
        );
    }

    fn noop() -> Handler {
        Arc::new(|_s| Box::pin(async {}))
    }

    /// A connected pair of TCP sockets on 127.0.0.1.
    async fn pair() -> (Compat<TcpStream>, Compat<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (dialed.unwrap().compat(), accepted.unwrap().0.compat())
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_proposal_is_routed_to_the_handler_that_takes_it() {
        let h = Handlers::default();
        h.insert_exact("/exact/1".into(), noop(), HandlerOptions::default());
        h.insert_match(
            "/echo".into(),
            Arc::new(|p| p.starts_with("/echo/")),
            noop(),
            HandlerOptions::default(),
        );
        let (dialer, listener) = pair().await;
        let peer = PeerId::random();
        let (dialed, routed) = tokio::join!(
            weft_mss::dialer_select(dialer, ["/nope", "/echo/2"], Version::V1),
            route_inbound(&h, peer, None, listener, WAIT)
        );
        assert_eq!(dialed.unwrap().0, "/echo/2");
        let routed = routed.unwrap();
        assert_eq!(routed.protocol, "/echo/2");
        assert_eq!(routed.admitted.entry.id, "/echo", "the match handler's key");
        assert!(routed.scope.is_none());
    }

    #[tokio::test]
    async fn a_full_slot_answers_na_and_routes_nothing() {
        let h = Handlers::default();
        h.insert_exact(
            "/one".into(),
            noop(),
            HandlerOptions::default().with_max_inbound_streams_per_peer(Some(1)),
        );
        let peer = PeerId::random();
        let (d1, l1) = pair().await;
        let (first, held) = tokio::join!(
            weft_mss::dialer_select(d1, ["/one"], Version::V1),
            route_inbound(&h, peer, None, l1, WAIT)
        );
        assert!(first.is_ok());
        let held = held.unwrap();
        let (d2, l2) = pair().await;
        let (second, refused) = tokio::join!(
            weft_mss::dialer_select(d2, ["/one"], Version::V1),
            route_inbound(&h, peer, None, l2, WAIT)
        );
        assert!(matches!(
            second,
            Err(NegotiationError::NoProtocolAccepted { .. })
        ));
        assert!(matches!(refused, Err(InboundRefusal::Negotiation(_))));
        drop(held);
        let (d3, l3) = pair().await;
        let (third, routed) = tokio::join!(
            weft_mss::dialer_select(d3, ["/one"], Version::V1),
            route_inbound(&h, peer, None, l3, WAIT)
        );
        assert!(third.is_ok() && routed.is_ok(), "the slot came back");
    }

    #[tokio::test]
    async fn a_silent_dialer_times_out() {
        let h = Handlers::default();
        let (_dialer, listener) = pair().await;
        let r = route_inbound(
            &h,
            PeerId::random(),
            None,
            listener,
            Duration::from_millis(50),
        )
        .await;
        assert!(matches!(r, Err(InboundRefusal::Timeout(_))));
    }
}
