//! Admission of inbound connections: the resource manager's connection scope and its
//! memory budget, the bytes each pending handshake received, and eviction of the
//! pending handshake that made the least progress when the pending limit is full.
//!
//! A pending handshake is evicted rather than the newcomer refused, so a crowd of
//! idle or stalled sockets (slowloris) cannot lock honest peers out: they keep
//! sending handshake bytes and so are never the least advanced for long.

use crate::error::DialError;
use crate::events::Event;
use crate::host::Inner;
use crate::transport::{TransportOutput, Transported};
use futures::io::{AsyncRead, AsyncWrite};
use multiaddr::{Multiaddr, Protocol};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};
use weft_connmgr::{Direction, PendingPermit};
use weft_resource_manager::ConnectionScope;
use weft_upgrader::{BoxedIo, Budget, BudgetDenied, MemoryBudget, Priority};

/// A connection's resource scope, shared by the host (streams, `set_peer`) and the
/// memory budget that the security and muxer protocols charge.
pub(crate) type SharedScope = Arc<Mutex<ConnectionScope>>;

pub(crate) fn lock_scope(scope: &SharedScope) -> MutexGuard<'_, ConnectionScope> {
    // A scope's counters are updated all or nothing before anything can panic.
    scope.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`MemoryBudget`] over a connection scope: reservations go to connection -> peer (or
/// transient before the handshake ends) -> system.
struct ScopeBudget(SharedScope);

impl MemoryBudget for ScopeBudget {
    fn try_reserve(&self, bytes: usize, priority: Priority) -> Result<(), BudgetDenied> {
        lock_scope(&self.0)
            .reserve_memory(bytes, priority.0)
            .map_err(|e| BudgetDenied {
                requested: bytes,
                reason: Box::new(e),
            })
    }

    fn release(&self, bytes: usize) {
        lock_scope(&self.0).release_memory(bytes);
    }
}

/// The budget the upgrader hands to the security and muxer protocols of a connection.
pub(crate) fn budget(scope: &SharedScope) -> Budget {
    Budget::new(Arc::new(ScopeBudget(scope.clone())))
}

/// Whether a connection to `addr` holds a file descriptor of its own (TCP does; a
/// relayed connection, the memory transport and QUIC's shared socket do not).
pub(crate) fn uses_fd(addr: &Multiaddr) -> bool {
    !crate::transport::is_circuit(addr) && addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

/// Counts the bytes read from a raw connection: how far its handshake got.
pub(crate) struct CountingIo {
    inner: BoxedIo,
    received: Arc<AtomicU64>,
}

impl CountingIo {
    pub(crate) fn new(inner: BoxedIo, received: Arc<AtomicU64>) -> Self {
        CountingIo { inner, received }
    }
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.received.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// What an eviction candidate is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes received from the remote so far.
    pub(crate) received: u64,
    /// When the handshake started.
    pub(crate) started: Instant,
}

/// The pending handshake to evict: the fewest bytes received, the oldest among equals.
pub(crate) fn choose_victim<K: Copy>(
    candidates: impl IntoIterator<Item = (K, Progress)>,
) -> Option<K> {
    candidates
        .into_iter()
        .min_by_key(|(_, p)| (p.received, p.started))
        .map(|(k, _)| k)
}

struct Entry {
    started: Instant,
    received: Arc<AtomicU64>,
    /// Cancelled to evict the handshake.
    evict: CancellationToken,
    /// Cancelled when the handshake's task has let go of everything it held.
    done: CancellationToken,
}

/// The inbound handshakes in progress.
#[derive(Default)]
pub(crate) struct PendingInbound {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

/// One registered pending handshake. Dropping it (the handshake's task ended, or was
/// dropped) unregisters it and tells an evicting newcomer that its resources are free:
/// keep it the first local of the task, so it drops after everything else.
pub(crate) struct PendingGuard {
    registry: Arc<PendingInbound>,
    id: u64,
    pub(crate) received: Arc<AtomicU64>,
    pub(crate) evicted: CancellationToken,
    done: CancellationToken,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.done.cancel();
    }
}

impl PendingInbound {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a handshake that starts now.
    pub(crate) fn register(self: &Arc<Self>) -> PendingGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let received = Arc::new(AtomicU64::new(0));
        let evicted = CancellationToken::new();
        let done = CancellationToken::new();
        self.lock().insert(
            id,
            Entry {
                started: Instant::now(),
                received: received.clone(),
                evict: evicted.clone(),
                done: done.clone(),
            },
        );
        PendingGuard {
            registry: self.clone(),
            id,
            received,
            evicted,
            done,
        }
    }

    /// Evicts the handshake that made the least progress (the oldest among equals);
    /// returns a token cancelled once it let go of its resources.
    pub(crate) fn evict_one(&self) -> Option<CancellationToken> {
        let mut entries = self.lock();
        let victim = choose_victim(entries.iter().map(|(id, e)| {
            (
                *id,
                Progress {
                    received: e.received.load(Ordering::Relaxed),
                    started: e.started,
                },
            )
        }))?;
        let entry = entries.remove(&victim)?;
        drop(entries);
        entry.evict.cancel();
        Some(entry.done)
    }

    /// Handshakes in progress.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

// ----- the host's side: admitting inbound connections -----

/// Pending handshakes one newcomer may evict before it is refused (other newcomers
/// may take the freed slots first).
const MAX_EVICTIONS_PER_ADMISSION: usize = 4;
/// How long a newcomer waits for an evicted handshake to give its resources back.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Whether evicting a pending handshake can make room for a refused newcomer: a full
/// pending-inbound limit (host-wide), anything the transient scope (where every pending
/// handshake is charged) refused, or the system's file descriptors (each pending TCP
/// handshake holds one). Per-IP limits and a peer's own limits are not.
fn eviction_can_help(e: &DialError) -> bool {
    use weft_resource_manager::{Resource, ScopeName};
    match e {
        DialError::Limit(l) => l.kind() == Some(weft_connmgr::LimitKind::PendingInbound),
        DialError::Resource(r) => match &r.scope {
            ScopeName::Transient | ScopeName::AllowlistTransient => true,
            ScopeName::System | ScopeName::AllowlistSystem => matches!(
                r.resource,
                Resource::PendingInbound | Resource::FileDescriptors
            ),
            _ => false,
        },
        _ => false,
    }
}

impl Inner {
    /// Admits an inbound connection (evicting the least advanced pending handshake
    /// when a limit is full) and spawns its handshake.
    ///
    /// The accept loop awaits this before it accepts the next socket, so newcomers
    /// are admitted one at a time, in the order they came: the room an eviction makes
    /// goes to the newcomer that made it (not to one that arrived later and raced it),
    /// the newcomer is evictable from the moment it is admitted, and sockets beyond
    /// the limits wait in the kernel's backlog instead of holding descriptors here.
    pub(crate) async fn admit_inbound_connection(self: &Arc<Self>, transported: Transported) {
        let span = tracing::debug_span!("inbound", remote_addr = %transported.remote_addr);
        let Transported {
            output,
            local_addr,
            remote_addr,
        } = transported;
        let started = Instant::now();
        let admitted = self
            .admit_inbound(&local_addr, &remote_addr)
            .instrument(span.clone())
            .await;
        let (permit, scope) = match admitted {
            Ok(admitted) => admitted,
            Err(e) => {
                self.hooks.inbound_refused(&e);
                return span
                    .in_scope(|| debug!(%remote_addr, error = %e, "inbound connection refused"));
            }
        };
        let pending = self.pending.register();
        let inner = self.clone();
        self.tasks.spawn(
            async move {
                // The handshake owns the permit and the scope: they are given back when
                // it returns, before `pending` drops and tells an evicting newcomer so.
                inner
                    .handshake(
                        output,
                        (local_addr, remote_addr),
                        permit,
                        scope,
                        &pending,
                        started,
                    )
                    .await;
                drop(pending);
            }
            .instrument(span),
        );
    }

    /// Runs the handshake of an admitted inbound connection, unless it is evicted.
    async fn handshake(
        self: &Arc<Self>,
        output: TransportOutput,
        (local_addr, remote_addr): (Multiaddr, Multiaddr),
        permit: PendingPermit,
        scope: SharedScope,
        pending: &PendingGuard,
        started: Instant,
    ) {
        let upgrade = async {
            match output {
                // Its budget is adopted once the connection joins its peer's scope.
                TransportOutput::Connection(c) => Ok(*c),
                TransportOutput::Raw(io) => {
                    let io: weft_upgrader::BoxedIo =
                        Box::new(CountingIo::new(io, pending.received.clone()));
                    let promised = crate::dial::classify::leading_ip(&remote_addr)
                        .filter(|_| !crate::transport::is_circuit(&remote_addr))
                        .and_then(|ip| self.inbound_roles.for_ip(ip));
                    match promised {
                        // A hole punch's SYN that reached our listener: the role the
                        // punch gave us, and the peer it punches with.
                        Some((role, peer)) => {
                            debug!(?role, %peer, "inbound connection of a hole punch");
                            self.upgrader
                                .upgrade_with_budget(io, role, Some(peer), budget(&scope))
                                .await
                        }
                        None => {
                            self.upgrader
                                .upgrade_inbound_with_budget(io, budget(&scope))
                                .await
                        }
                    }
                }
            }
        };
        let connection = tokio::select! {
            _ = pending.evicted.cancelled() => {
                self.hooks.inbound_evicted();
                return debug!(%remote_addr, "pending handshake evicted for a newcomer");
            }
            c = upgrade => c,
        };
        match connection {
            Ok(c) => {
                if let Err(e) = self.add_connection(
                    c,
                    Direction::Inbound,
                    (local_addr, remote_addr),
                    permit,
                    scope,
                    started,
                ) {
                    self.hooks.inbound_refused(&e);
                    info!(error = %e, "inbound connection refused after the handshake");
                }
            }
            Err(e) => {
                self.hooks.inbound_upgrade_failed(&e);
                debug!(error = %e, "inbound upgrade failed");
                self.emit(Event::InboundUpgradeFailed {
                    local_addr,
                    remote_addr,
                    step: e.step(),
                    reason: e.to_string(),
                });
            }
        }
    }

    /// The connection policy's permit and the resource manager's scope for an inbound
    /// connection. When a refusal is one that eviction can make room for (see
    /// [`eviction_can_help`]), evicts the pending handshake that made the least progress
    /// and tries again.
    async fn admit_inbound(
        &self,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(PendingPermit, SharedScope), DialError> {
        let mut evictions = 0;
        loop {
            let denied = match self.try_admit_inbound(local_addr, remote_addr) {
                Ok(admitted) => return Ok(admitted),
                Err(e) => e,
            };
            if !eviction_can_help(&denied) || evictions >= MAX_EVICTIONS_PER_ADMISSION {
                return Err(denied);
            }
            let Some(freed) = self.pending.evict_one() else {
                return Err(denied);
            };
            evictions += 1;
            if tokio::time::timeout(EVICTION_WAIT, freed.cancelled())
                .await
                .is_err()
            {
                return Err(denied);
            }
        }
    }

    fn try_admit_inbound(
        &self,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(PendingPermit, SharedScope), DialError> {
        let permit = self.policy.allow_inbound(local_addr, remote_addr)?;
        let scope = self.resources.open_connection(
            weft_resource_manager::Direction::Inbound,
            remote_addr,
            uses_fd(remote_addr),
        )?;
        Ok((permit, Arc::new(Mutex::new(scope))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_victim_made_the_least_progress_and_is_the_oldest_among_equals() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let p = |received, ms| Progress {
            received,
            started: at(ms),
        };
        assert_eq!(choose_victim::<u8>([]), None);
        assert_eq!(
            choose_victim([(1, p(20, 0)), (2, p(0, 5)), (3, p(0, 9))]),
            Some(2)
        );
        assert_eq!(choose_victim([(1, p(20, 0)), (2, p(19, 50))]), Some(2));
        assert_eq!(choose_victim([(1, p(0, 7)), (2, p(0, 3))]), Some(2));
    }

    #[test]
    fn eviction_cancels_the_chosen_handshake_and_reports_when_it_let_go() {
        let registry = Arc::new(PendingInbound::default());
        let old_idle = registry.register();
        let busy = registry.register();
        busy.received.store(100, Ordering::Relaxed);
        let young_idle = registry.register();
        assert_eq!(registry.len(), 3);
        let done = registry.evict_one().expect("a victim");
        assert!(old_idle.evicted.is_cancelled());
        assert!(!busy.evicted.is_cancelled() && !young_idle.evicted.is_cancelled());
        assert!(!done.is_cancelled(), "its task still holds its resources");
        drop(old_idle);
        assert!(done.is_cancelled());
        assert_eq!(registry.len(), 2);
        // Next: the young idle one, then the busy one.
        registry.evict_one().unwrap();
        assert!(young_idle.evicted.is_cancelled());
        registry.evict_one().unwrap();
        assert!(busy.evicted.is_cancelled());
        assert!(registry.evict_one().is_none());
    }

    #[test]
    fn only_direct_tcp_uses_an_fd() {
        let tcp: Multiaddr = "/ip4/1.2.3.4/tcp/1".parse().unwrap();
        let mem: Multiaddr = "/memory/5".parse().unwrap();
        let quic: Multiaddr = "/ip4/1.2.3.4/udp/1/quic-v1".parse().unwrap();
        assert!(uses_fd(&tcp));
        assert!(!uses_fd(&mem));
        assert!(!uses_fd(&quic));
    }

    #[test]
    fn eviction_is_tried_for_what_pending_handshakes_hold() {
        use weft_resource_manager::{Resource, ResourceError, ScopeName};
        let denied = |scope, resource| {
            DialError::Resource(Box::new(ResourceError {
                scope,
                resource,
                requested: 1,
                used: 1,
                limit: 1,
                allowed: 1,
            }))
        };
        for (scope, resource, helps) in [
            (ScopeName::Transient, Resource::FileDescriptors, true),
            (ScopeName::Transient, Resource::ConnectionsInbound, true),
            (ScopeName::System, Resource::PendingInbound, true),
            (ScopeName::System, Resource::FileDescriptors, true),
            (ScopeName::System, Resource::ConnectionsInbound, false),
            (ScopeName::Connection, Resource::PendingInbound, false),
        ] {
            assert_eq!(
                eviction_can_help(&denied(scope.clone(), resource)),
                helps,
                "{scope:?} {resource:?}"
            );
        }
    }
}
