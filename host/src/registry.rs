//! The connection registry: admitting an upgraded connection (policy, bookkeeping,
//! events, its driver, stream and identify tasks), removing it when it ends, closing
//! idle connections and trimming what the policy calls expendable, on a timer.

use crate::admission::{lock_scope, SharedScope};
use crate::book;
use crate::conn::{Activity, ConnState};
use crate::error::DialError;
use crate::events::Event;
use crate::host::Inner;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use weft_connmgr::{ConnectionId, Direction, PendingPermit};
use weft_upgrader::Connection;

/// How long a closed connection's driver may take to finish its last frames.
const DRIVER_WIND_DOWN: Duration = Duration::from_secs(2);

/// The open connections, by id and by peer (oldest first).
#[derive(Debug)]
pub(crate) struct Registry<C> {
    connections: HashMap<ConnectionId, C>,
    by_peer: HashMap<PeerId, Vec<ConnectionId>>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            connections: HashMap::new(),
            by_peer: HashMap::new(),
        }
    }
}

impl<C> Registry<C> {
    /// Registers a connection of `peer`.
    pub(crate) fn insert(&mut self, id: ConnectionId, peer: PeerId, conn: C) {
        self.connections.insert(id, conn);
        self.by_peer.entry(peer).or_default().push(id);
    }

    /// Unregisters a connection; true if it was the peer's last one.
    pub(crate) fn remove(&mut self, id: ConnectionId, peer: &PeerId) -> bool {
        self.connections.remove(&id);
        let Some(ids) = self.by_peer.get_mut(peer) else {
            return false;
        };
        ids.retain(|i| *i != id);
        if ids.is_empty() {
            self.by_peer.remove(peer);
            return true;
        }
        false
    }

    /// The connection with this id.
    pub(crate) fn get(&self, id: &ConnectionId) -> Option<&C> {
        self.connections.get(id)
    }

    /// Every open connection, in no particular order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &C> {
        self.connections.values()
    }

    /// The open connections to `peer`, oldest first.
    pub(crate) fn of<'a>(&'a self, peer: &PeerId) -> impl DoubleEndedIterator<Item = &'a C> {
        self.by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.connections.get(id))
    }

    /// The registered connections among `ids` (a policy may name one that has just
    /// closed), in the order given.
    pub(crate) fn pick<'a>(&'a self, ids: &'a [ConnectionId]) -> impl Iterator<Item = &'a C> {
        ids.iter().filter_map(|id| self.connections.get(id))
    }
}

/// Whether a connection is idle: no open stream, and no stream activity for `timeout`.
pub(crate) fn is_idle(open_streams: usize, idle_for: Duration, timeout: Duration) -> bool {
    open_streams == 0 && idle_for >= timeout
}

impl Inner {
    /// Registers an upgraded connection: policy, bookkeeping, events, and its tasks.
    pub(crate) fn add_connection(
        self: &Arc<Self>,
        connection: Connection,
        direction: Direction,
        (local_addr, remote_addr): (Multiaddr, Multiaddr),
        permit: PendingPermit,
        scope: SharedScope,
        started: Instant,
    ) -> Result<Arc<ConnState>, DialError> {
        let id = ConnectionId::next();
        let Connection {
            remote_peer,
            remote_public_key,
            security_protocol,
            muxer_protocol,
            muxed,
            driver,
            ..
        } = connection;
        if let Err(e) = lock_scope(&scope).set_peer(remote_peer) {
            self.discard(muxed, driver);
            return Err(e.into());
        }
        // A connection a transport made before its budget was known (QUIC) reserves its
        // window now, from the peer's scope: a short budget gives it a smaller window
        // (down to a floor), never a refusal. Reserving it earlier, in the transient
        // scope, would make `set_peer` move the whole window and fail on a full peer.
        muxed.adopt_budget(crate::admission::budget(&scope));
        let conn = Arc::new(ConnState {
            id,
            peer: remote_peer,
            direction,
            local_addr: local_addr.clone(),
            remote_addr: remote_addr.clone(),
            security: security_protocol.clone(),
            muxer: muxer_protocol.clone(),
            muxed,
            open_streams: Arc::new(AtomicUsize::new(0)),
            activity: Arc::new(Activity::new()),
            scope,
            closed: self.shutdown.child_token(),
        });
        // Admitted and registered under one lock: a trim (the timer's, or another
        // connection's) never picks a connection the host cannot find yet.
        let admitted = {
            let mut state = self.lock();
            let admitted =
                self.policy
                    .established(permit, id, remote_peer, direction, &remote_addr);
            if admitted.is_ok() {
                state.registry.insert(id, remote_peer, conn.clone());
            }
            admitted
        };
        let admission = match admitted {
            Ok(a) => a,
            Err(e) => {
                self.discard(conn.muxed.clone(), driver);
                return Err(e.into());
            }
        };
        book::on_connected(
            &self.writer,
            &remote_peer,
            &remote_public_key,
            &remote_addr,
            direction,
        );
        info!(peer = %remote_peer, conn = %id, %direction, %remote_addr, security = %security_protocol, muxer = %muxer_protocol, "connected");
        self.hooks.connection_opened(&conn, started);
        self.emit(Event::Connected {
            peer: remote_peer,
            connection: id,
            direction,
            local_addr,
            remote_addr,
            security: security_protocol,
            muxer: muxer_protocol,
        });

        // The driver: the connection lives as long as it runs.
        let weak = Arc::downgrade(self);
        let c = conn.clone();
        self.tasks.spawn(async move {
            let mut driver = driver;
            let ended = tokio::select! {
                r = &mut driver => Some(r),
                _ = c.closed.cancelled() => None,
            };
            let ended = match ended {
                Some(r) => Some(r),
                // Closed by us, or the host shut down (possibly before this
                // connection was registered, so nobody closed it yet): close it
                // gracefully (a no-op when already closed) while the driver winds
                // down, so every open stream sees the end instead of waiting forever.
                None => {
                    let muxed = c.muxed.clone();
                    let wind_down = futures::future::join(muxed.close(), &mut driver);
                    tokio::time::timeout(DRIVER_WIND_DOWN, wind_down)
                        .await
                        .ok()
                        .map(|(_, r)| r)
                }
            };
            if let Some(Err(e)) = ended {
                debug!(conn = %c.id, error = %e, "connection ended with an error");
            }
            c.closed.cancel();
            if let Some(inner) = weak.upgrade() {
                inner.remove_connection(&c);
            }
        });
        // Inbound streams.
        self.tasks.spawn(crate::routing::accept_streams(
            Arc::downgrade(self),
            conn.clone(),
        ));
        // Identify the remote.
        let inner = self.clone();
        let c = conn.clone();
        self.tasks
            .spawn(async move { inner.request_identify(&c).await });

        if admission.should_trim() {
            self.trim();
        }
        Ok(conn)
    }

    /// Closes a connection that was refused after its handshake.
    fn discard(
        &self,
        muxed: Arc<dyn weft_upgrader::MuxedConnection>,
        driver: weft_upgrader::BoxFuture<'static, Result<(), weft_upgrader::MuxerError>>,
    ) {
        self.tasks.spawn(async move {
            let _ = muxed.close().await;
        });
        self.tasks.spawn(async move {
            let _ = driver.await;
        });
    }

    fn remove_connection(&self, conn: &ConnState) {
        let last = {
            let mut state = self.lock();
            let last = state.registry.remove(conn.id, &conn.peer);
            if last {
                state.ping_locks.remove(&conn.peer);
            }
            last
        };
        self.policy.closed(conn.id);
        if last {
            book::on_disconnected(&self.writer, &conn.peer);
        }
        info!(peer = %conn.peer, conn = %conn.id, "disconnected");
        self.hooks.connection_closed(conn);
        self.emit(Event::Disconnected {
            peer: conn.peer,
            connection: conn.id,
            direction: conn.direction,
            remote_addr: conn.remote_addr.clone(),
        });
    }

    /// Every open connection.
    pub(crate) fn all_connections(&self) -> Vec<Arc<ConnState>> {
        self.lock().registry.all().cloned().collect()
    }

    /// The open connection with this id.
    pub(crate) fn connection(&self, id: &ConnectionId) -> Option<Arc<ConnState>> {
        self.lock().registry.get(id).cloned()
    }

    /// Closes one connection gracefully; false if no open connection has this id.
    pub(crate) async fn close(&self, id: &ConnectionId) -> bool {
        let Some(conn) = self.connection(id) else {
            return false;
        };
        close_connection(&conn, self.config.shutdown_grace).await;
        true
    }

    /// Closes every connection to `peer` gracefully.
    pub(crate) async fn close_peer(&self, peer: &PeerId) {
        let conns: Vec<Arc<ConnState>> = self.lock().registry.of(peer).cloned().collect();
        for conn in conns {
            close_connection(&conn, self.config.shutdown_grace).await;
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    fn close_idle(self: &Arc<Self>) {
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        let now = Instant::now();
        let idle: Vec<Arc<ConnState>> = self
            .lock()
            .registry
            .all()
            .filter(|c| c.is_usable() && c.is_idle(timeout, now))
            .cloned()
            .collect();
        let grace = self.config.shutdown_grace;
        for conn in idle {
            info!(peer = %conn.peer, conn = %conn.id, ?timeout, "closing idle connection");
            self.tasks
                .spawn(async move { close_connection(&conn, grace).await });
        }
    }

    /// Closes what the policy says is expendable.
    fn trim(self: &Arc<Self>) {
        let victims: Vec<Arc<ConnState>> = {
            let ids = self.policy.trim();
            let state = self.lock();
            state.registry.pick(&ids).cloned().collect()
        };
        let grace = self.config.shutdown_grace;
        for conn in victims {
            info!(peer = %conn.peer, conn = %conn.id, "trimming connection");
            self.tasks
                .spawn(async move { close_connection(&conn, grace).await });
        }
    }
}

/// Closes one connection gracefully (go-away), bounded in time.
pub(crate) async fn close_connection(conn: &ConnState, grace: Duration) {
    if tokio::time::timeout(grace, conn.muxed.close())
        .await
        .is_err()
    {
        debug!(conn = %conn.id, "graceful close timed out");
    }
    conn.closed.cancel();
}

/// The host's timer: closes idle connections and trims above the high watermark,
/// every `every`, until shutdown.
pub(crate) async fn maintenance(weak: Weak<Inner>, shutdown: CancellationToken, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(inner) = weak.upgrade() else { break };
        inner.close_idle();
        inner.trim();
        inner.refresh_listen_addrs();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_gone_with_its_last_connection() {
        let mut r = Registry::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (a1, a2, b1) = (
            ConnectionId::next(),
            ConnectionId::next(),
            ConnectionId::next(),
        );
        r.insert(a1, a, "a1");
        r.insert(a2, a, "a2");
        r.insert(b1, b, "b1");
        assert_eq!(r.of(&a).copied().collect::<Vec<_>>(), ["a1", "a2"]);
        assert_eq!(r.of(&a).next_back(), Some(&"a2"), "the newest is last");
        assert!(!r.remove(a1, &a), "a still has a2");
        assert_eq!(r.get(&a1), None);
        assert_eq!(r.of(&a).copied().collect::<Vec<_>>(), ["a2"]);
        assert!(r.remove(a2, &a), "a2 was a's last");
        assert_eq!(r.of(&a).count(), 0);
        assert!(!r.remove(a2, &a), "removing twice is no new last");
        assert_eq!(r.all().copied().collect::<Vec<_>>(), ["b1"]);
    }

    #[test]
    fn trimming_picks_only_registered_connections_in_the_policys_order() {
        let mut r = Registry::default();
        let p = PeerId::random();
        let (c1, c2, gone) = (
            ConnectionId::next(),
            ConnectionId::next(),
            ConnectionId::next(),
        );
        r.insert(c1, p, 1);
        r.insert(c2, p, 2);
        let named = [c2, gone, c1];
        assert_eq!(r.pick(&named).copied().collect::<Vec<_>>(), [2, 1]);
        assert_eq!(r.pick(&[]).count(), 0);
    }

    #[test]
    fn idle_means_no_stream_and_no_activity_for_the_timeout() {
        let t = Duration::from_secs(120);
        assert!(is_idle(0, t, t));
        assert!(is_idle(0, t * 2, t));
        assert!(!is_idle(0, t - Duration::from_millis(1), t));
        assert!(!is_idle(1, t * 10, t), "an open stream keeps it");
        assert!(is_idle(0, Duration::ZERO, Duration::ZERO));
    }
}
