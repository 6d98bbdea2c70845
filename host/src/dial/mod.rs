//! Dialing: one shared attempt per peer (cancelled when every caller gave up),
//! staggered attempts over a peer's addresses, and one address attempt (policy
//! permit, resource scope, transport, upgrade within the connection's budget).
//!
//! The pure core that is to replace the fixed stagger, with no sockets and no
//! timers: [`classify`] (which network an address is on), [`rank`] (which
//! addresses are out at once, and the order of the rest), [`schedule`] (when each
//! attempt starts, RFC 8305) and [`backoff`] (peers and addresses that keep failing).

pub mod backoff;
pub mod classify;
pub mod rank;
pub mod schedule;

use crate::admission::{self, SharedScope};
use crate::book;
use crate::conn::ConnState;
use crate::error::DialError;
use crate::host::Inner;
use crate::transport::{TransportDialOpts, TransportOutput, Transported};
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tracing::{debug, Instrument};
use weft_connmgr::Direction;

type DialFuture = BoxFuture<'static, Result<Arc<ConnState>, DialError>>;
type SharedDial = Shared<DialFuture>;

/// Numbers the shared dials, so an ended one removes its own entry only.
static NEXT_DIAL: AtomicU64 = AtomicU64::new(0);

/// A shared dial in progress. Only its waiters hold it strongly: when the last one
/// drops, the attempt is dropped too (its sockets closed, its permits returned) and
/// its [`DialEntry`] removes it from the map.
pub(crate) struct DialSlot {
    id: u64,
    dial: WeakShared<DialFuture>,
}

/// Moved into a shared dial's future: removes the dial from `State::dials` when the
/// future ends, completed or abandoned by every waiter.
struct DialEntry {
    inner: Weak<Inner>,
    peer: PeerId,
    id: u64,
}

impl Drop for DialEntry {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut state = inner.lock();
            if state.dials.get(&self.peer).is_some_and(|d| d.id == self.id) {
                state.dials.remove(&self.peer);
            }
        }
    }
}

impl Inner {
    pub(crate) fn connection_to(&self, peer: &PeerId) -> Option<Arc<ConnState>> {
        // The newest usable one.
        let state = self.lock();
        let newest = state
            .connections_of(peer)
            .rev()
            .find(|c| c.is_usable())
            .cloned();
        newest
    }

    /// An open connection to `peer`, or one dial shared by every concurrent caller.
    pub(crate) async fn dial_shared<F>(
        self: &Arc<Self>,
        peer: PeerId,
        start: F,
    ) -> Result<Arc<ConnState>, DialError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Arc<ConnState>, DialError>>,
    {
        if peer == self.peer_id {
            return Err(DialError::SelfDial);
        }
        if let Some(conn) = self.connection_to(&peer) {
            return Ok(conn);
        }
        // No strong handle of a dial may drop while the lock is held: the last one
        // drops the attempt, whose entry takes the lock.
        let shared: SharedDial = {
            let mut state = self.lock();
            match state.dials.get(&peer).and_then(|d| d.dial.upgrade()) {
                Some(existing) => existing,
                None => {
                    let id = NEXT_DIAL.fetch_add(1, Ordering::Relaxed);
                    let entry = DialEntry {
                        inner: Arc::downgrade(self),
                        peer,
                        id,
                    };
                    let attempt = start();
                    let fut = async move {
                        let _entry = entry;
                        attempt.await
                    }
                    .boxed()
                    .shared();
                    if let Some(dial) = fut.downgrade() {
                        state.dials.insert(peer, DialSlot { id, dial });
                    }
                    fut
                }
            }
        };
        shared.await
    }

    pub(crate) async fn connect(
        self: &Arc<Self>,
        peer: PeerId,
    ) -> Result<Arc<ConnState>, DialError> {
        let inner = self.clone();
        self.dial_shared(peer, move || {
            async move {
                let addrs = book::dialable_addrs(&inner.writer, &peer).await;
                if addrs.is_empty() {
                    let error = DialError::NoAddresses(peer);
                    inner.hooks.dial_failed(&error);
                    return Err(error);
                }
                inner.dial_addresses(Some(peer), addrs).await
            }
            .boxed()
        })
        .await
    }

    /// Dials several addresses, starting one every `dial_stagger`; the first success
    /// wins and the other attempts are dropped.
    pub(crate) async fn dial_addresses(
        self: &Arc<Self>,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
    ) -> Result<Arc<ConnState>, DialError> {
        if self.shutdown.is_cancelled() {
            return Err(DialError::Shutdown);
        }
        let total = self.config.dial_timeout;
        let stagger = self.config.dial_stagger;
        let target = peer
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("{addrs:?}"));
        let attempts = async {
            let mut pending = FuturesUnordered::new();
            let mut errors = Vec::new();
            for (i, addr) in addrs.iter().cloned().enumerate() {
                let inner = self.clone();
                let delay = stagger * i as u32;
                pending.push(async move {
                    // Even a zero sleep waits for the timer's next 1 ms tick: the first
                    // attempt starts at once.
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let result = inner.dial_one(peer, addr.clone()).await;
                    (addr, result)
                });
            }
            while let Some((addr, result)) = pending.next().await {
                match result {
                    Ok(conn) => return Ok(conn),
                    Err(e) => {
                        debug!(%addr, error = %e, "dial attempt failed");
                        errors.push((addr, e));
                    }
                }
            }
            if errors.len() == 1 {
                if let Some((_, e)) = errors.pop() {
                    return Err(e);
                }
            }
            Err(DialError::AllFailed(errors))
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(DialError::Shutdown),
            r = tokio::time::timeout(total, attempts) => {
                r.map_err(|_| {
                    // The attempts still in flight were dropped, not failed: the
                    // dial's own timeout is the one failure to report.
                    let error = DialError::Timeout { addr: target, after: total };
                    self.hooks.dial_failed(&error);
                    error
                })?
            }
        }
    }

    async fn dial_one(
        self: &Arc<Self>,
        peer: Option<PeerId>,
        addr: Multiaddr,
    ) -> Result<Arc<ConnState>, DialError> {
        if peer == Some(self.peer_id) {
            return Err(DialError::SelfDial);
        }
        let per_address = self.config.dial_timeout_per_address;
        let span = tracing::debug_span!("dial", %addr, ?peer);
        let started = std::time::Instant::now();
        let attempt = async {
            let permit = self.policy.allow_dial(peer, &addr)?;
            let scope: SharedScope = Arc::new(Mutex::new(self.resources.open_connection(
                weft_resource_manager::Direction::Outbound,
                &addr,
                admission::uses_fd(&addr),
            )?));
            let transport = self
                .transports
                .iter()
                .find(|t| t.can_dial(&addr))
                .ok_or_else(|| DialError::Transport {
                    addr: addr.clone(),
                    source: Arc::new(crate::transport::TransportError::Unsupported(addr.clone())),
                })?;
            let transported = transport
                .dial(&addr, &TransportDialOpts::new().with_peer(peer))
                .await
                .map_err(|e| DialError::Transport {
                    addr: addr.clone(),
                    source: Arc::new(e),
                })?;
            let Transported {
                output,
                local_addr,
                remote_addr,
            } = transported;
            let connection = match output {
                TransportOutput::Connection(c) => *c,
                TransportOutput::Raw(io) => self
                    .upgrader
                    .upgrade_outbound_with_budget(io, peer, admission::budget(&scope))
                    .await
                    .map_err(|e| DialError::Upgrade {
                        addr: addr.clone(),
                        source: Arc::new(e),
                    })?,
            };
            if let Some(expected) = peer {
                if connection.remote_peer != expected {
                    // A transport that yields connections directly must prove the peer too.
                    return Err(DialError::Upgrade {
                        addr: addr.clone(),
                        source: Arc::new(weft_upgrader::UpgradeError::Handshake {
                            protocol: connection.security_protocol.clone(),
                            source: weft_upgrader::SecurityError::PeerIdMismatch {
                                expected,
                                actual: connection.remote_peer,
                            },
                        }),
                    });
                }
            }
            self.add_connection(
                connection,
                Direction::Outbound,
                (local_addr, remote_addr),
                permit,
                scope,
                started,
            )
        };
        let result = tokio::time::timeout(per_address, attempt.instrument(span))
            .await
            .map_err(|_| DialError::Timeout {
                addr: addr.to_string(),
                after: per_address,
            })
            .and_then(|r| r);
        if let Err(e) = &result {
            self.hooks.dial_failed(e);
        }
        result
    }
}
