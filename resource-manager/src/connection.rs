//! [`ConnectionScope`]: one connection's reservations, returned on drop.

use std::sync::{Arc, Mutex};

use libp2p_identity::PeerId;

use crate::error::ResourceError;
use crate::manager::{lock, Inner};
use crate::resource::{Direction, Resource};
use crate::scope::{self, Delta, Path, Scope, ALWAYS, ZERO};
use crate::stats::ScopeUsage;
use crate::stream::StreamScope;

/// Where a connection is charged. Changed only under the connection's lock, which every
/// reservation of the connection and its streams takes.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// The system scope (the allowlist's, for an allowlisted connection).
    pub(crate) system: Arc<Scope>,
    /// The transient scope (the allowlist's, for an allowlisted connection): the
    /// connection's until it has a peer, and its streams' until their protocol is agreed.
    pub(crate) transient: Arc<Scope>,
    /// The proven peer and its scope.
    pub(crate) peer: Option<(PeerId, Arc<Scope>)>,
    /// What the [`ConnectionScope`] itself holds (not its streams).
    own: Delta,
    /// What streams not yet past mss hold while the connection has no peer: their share
    /// of the transient scope, which the connection's own transient charge covers.
    pub(crate) merged: Delta,
}

impl ConnState {
    /// The scope above the connection besides the system: its peer, else transient.
    pub(crate) fn upper(&self) -> &Scope {
        match &self.peer {
            Some((_, peer)) => peer,
            None => &self.transient,
        }
    }

    /// The scopes a connection's own reservations go to.
    fn path<'a>(&'a self, conn: &'a Scope) -> Path<'a> {
        [
            Some(conn),
            Some(&self.system),
            Some(self.upper()),
            None,
            None,
            None,
        ]
    }
}

/// A connection's scope and state, shared with its streams.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) inner: Arc<Inner>,
    /// The connection scope: its own usage plus its streams'.
    pub(crate) scope: Scope,
    pub(crate) state: Mutex<ConnState>,
}

impl Drop for ConnShared {
    fn drop(&mut self) {
        debug_assert!(self.scope.usage().is_zero(), "connection scope leaked");
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((peer, scope)) = state.peer.take() {
            lock(&self.inner.registry).release_peer(peer, scope);
        }
    }
}

/// One connection's reservations: a connection, maybe a pending slot and an fd, memory,
/// and (through its [`StreamScope`]s) streams.
///
/// RAII: dropping it returns everything it holds itself to every scope on its path;
/// its streams return theirs when they drop.
#[derive(Debug)]
pub struct ConnectionScope {
    shared: Arc<ConnShared>,
    direction: Direction,
    allowlisted: bool,
}

impl ConnectionScope {
    pub(crate) fn new(
        inner: Arc<Inner>,
        scope: Scope,
        own: Delta,
        system: Arc<Scope>,
        transient: Arc<Scope>,
        allowlisted: bool,
    ) -> Self {
        let direction = if own[Resource::ConnectionsInbound.index()] == 1 {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let state = ConnState {
            system,
            transient,
            peer: None,
            own,
            merged: ZERO,
        };
        ConnectionScope {
            shared: Arc::new(ConnShared {
                inner,
                scope,
                state: Mutex::new(state),
            }),
            direction,
            allowlisted,
        }
    }

    /// The handshake proved `peer`: leaves transient (and the pending-inbound count),
    /// joins the peer scope (per-peer limits; none but an explicit override when the peer
    /// id is allowlisted). Meant to be called once; calling it again with another peer
    /// moves the connection to that peer.
    ///
    /// # Errors
    ///
    /// [`ResourceError`] from the peer scope; the connection stays where it was.
    pub fn set_peer(&mut self, peer: PeerId) -> Result<(), ResourceError> {
        let shared = &*self.shared;
        let inner = &*shared.inner;
        let mut registry = lock(&inner.registry);
        let mut state = lock(&shared.state);
        if matches!(&state.peer, Some((current, _)) if *current == peer) {
            return Ok(());
        }
        let scope = registry.peer(peer, || inner.limits.peer_limit(&peer));
        let total = shared.scope.usage_delta();
        let mut moved = total;
        moved[Resource::PendingInbound.index()] = 0;
        if let Err(error) = scope.try_charge(&moved, ALWAYS) {
            drop(state);
            registry.release_peer(peer, scope);
            return Err(inner.denied(error));
        }
        let previous = state.peer.replace((peer, scope));
        match previous {
            None => {
                // Transient keeps only what the streams not yet past mss hold there.
                let mut leaving = total;
                scope::sub(&mut leaving, &state.merged);
                state.transient.sub(&leaving);
                state.merged = ZERO;
                let pending = scope::one(
                    Resource::PendingInbound,
                    state.own[Resource::PendingInbound.index()],
                );
                shared.scope.sub(&pending);
                state.system.sub(&pending);
                scope::sub(&mut state.own, &pending);
                drop(state);
            }
            Some((old, old_scope)) => {
                old_scope.sub(&moved);
                drop(state);
                registry.release_peer(old, old_scope);
            }
        }
        Ok(())
    }

    /// The peer the handshake proved, once [`set_peer`](Self::set_peer) succeeded.
    pub fn peer(&self) -> Option<PeerId> {
        lock(&self.shared.state)
            .peer
            .as_ref()
            .map(|(peer, _)| *peer)
    }

    /// Who opened the connection.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Whether the connection got in through the allowlist's scopes.
    pub fn is_allowlisted(&self) -> bool {
        self.allowlisted
    }

    /// Memory charged to connection -> peer (or transient before `set_peer`) -> system,
    /// all or nothing. The reservation succeeds only while each scope's usage after it is
    /// at most `limit * (priority + 1) / 256` (255 = the whole limit).
    ///
    /// # Errors
    ///
    /// [`ResourceError`] naming the scope that denied; nothing was charged.
    pub fn reserve_memory(&self, bytes: usize, priority: u8) -> Result<(), ResourceError> {
        let delta = scope::one(Resource::Memory, bytes as u64);
        let mut state = lock(&self.shared.state);
        scope::charge(&state.path(&self.shared.scope), &delta, priority)
            .map_err(|e| self.shared.inner.denied(e))?;
        scope::add(&mut state.own, &delta);
        Ok(())
    }

    /// Gives back `bytes` reserved with [`reserve_memory`](Self::reserve_memory) (at most
    /// what this connection holds itself).
    pub fn release_memory(&self, bytes: usize) {
        let mut state = lock(&self.shared.state);
        let held = state.own[Resource::Memory.index()];
        let delta = scope::one(Resource::Memory, (bytes as u64).min(held));
        scope::release(&state.path(&self.shared.scope), &delta);
        scope::sub(&mut state.own, &delta);
    }

    /// The memory the connection scope counts: its own reservations and its streams'.
    pub fn memory_used(&self) -> u64 {
        self.shared.scope.used(Resource::Memory)
    }

    /// The connection scope's usage: its own and its streams'.
    pub fn usage(&self) -> ScopeUsage {
        self.shared.scope.usage()
    }

    /// A stream before its protocol is negotiated: charged to stream -> transient +
    /// connection + peer + system.
    ///
    /// # Errors
    ///
    /// [`ResourceError`] naming the scope that denied; nothing was charged.
    pub fn open_stream(&self, direction: Direction) -> Result<StreamScope, ResourceError> {
        StreamScope::open(self.shared.clone(), direction)
    }
}

impl Drop for ConnectionScope {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        let own = std::mem::replace(&mut state.own, ZERO);
        scope::release(&state.path(&self.shared.scope), &own);
    }
}
