//! [`StreamScope`]: one stream's reservations, returned on drop.

use std::sync::Arc;

use libp2p_identity::PeerId;

use crate::connection::{ConnShared, ConnState};
use crate::error::{ResourceError, ScopeName};
use crate::manager::lock;
use crate::resource::{Direction, Resource};
use crate::scope::{self, Delta, Path, Scope, ALWAYS};
use crate::stats::ScopeUsage;

/// Where a stream is charged besides its connection.
#[derive(Debug)]
enum Edge {
    /// Before mss agreed on a protocol.
    Transient,
    /// After: the protocol's scope and, if the connection had a peer, the
    /// protocol-peer scope.
    Protocol {
        name: String,
        peer: Option<PeerId>,
        protocol: Arc<Scope>,
        per_peer: Option<Arc<Scope>>,
    },
}

/// One stream's reservations: a stream of one direction and memory.
///
/// RAII: dropping it returns everything to every scope on its path, wherever the stream
/// is by then (transient or its protocol).
#[derive(Debug)]
pub struct StreamScope {
    conn: Arc<ConnShared>,
    scope: Scope,
    direction: Direction,
    edge: Edge,
}

/// The scopes a stream's reservations go to.
fn path<'a>(state: &'a ConnState, stream: &'a Scope, edge: &'a Edge, conn: &'a Scope) -> Path<'a> {
    let (first, second) = match edge {
        // Without a peer the connection itself is charged to transient: once is enough.
        Edge::Transient => (state.peer.as_ref().map(|_| &*state.transient), None),
        Edge::Protocol {
            protocol, per_peer, ..
        } => (Some(&**protocol), per_peer.as_deref()),
    };
    [
        Some(stream),
        first,
        second,
        Some(conn),
        Some(&state.system),
        Some(state.upper()),
    ]
}

impl StreamScope {
    pub(crate) fn open(
        conn: Arc<ConnShared>,
        direction: Direction,
    ) -> Result<StreamScope, ResourceError> {
        let stream = StreamScope {
            scope: Scope::new(ScopeName::Stream, conn.inner.limits.stream),
            direction,
            edge: Edge::Transient,
            conn,
        };
        let delta = scope::stream(direction);
        stream.charge(&delta, ALWAYS)?;
        Ok(stream)
    }

    /// Charges `delta` along the stream's path, all or nothing.
    fn charge(&self, delta: &Delta, priority: u8) -> Result<(), ResourceError> {
        let mut state = lock(&self.conn.state);
        scope::charge(
            &path(&state, &self.scope, &self.edge, &self.conn.scope),
            delta,
            priority,
        )
        .map_err(|e| self.conn.inner.denied(e))?;
        if self.is_merged(&state) {
            scope::add(&mut state.merged, delta);
        }
        Ok(())
    }

    /// Gives back what `amount` computes from the stream's usage, under the lock.
    fn release(&self, amount: impl FnOnce(&Scope) -> Delta) {
        let mut state = lock(&self.conn.state);
        let delta = amount(&self.scope);
        scope::release(
            &path(&state, &self.scope, &self.edge, &self.conn.scope),
            &delta,
        );
        if self.is_merged(&state) {
            scope::sub(&mut state.merged, &delta);
        }
    }

    /// Whether the stream's transient share is covered by its connection's.
    fn is_merged(&self, state: &ConnState) -> bool {
        matches!(self.edge, Edge::Transient) && state.peer.is_none()
    }

    /// mss agreed on `protocol`: leaves transient, joins the protocol scope and the
    /// protocol-peer scope (the per-peer limit of one protocol; only when the
    /// connection has a peer).
    ///
    /// # Errors
    ///
    /// [`ResourceError`] from the protocol or protocol-peer scope; the stream stays
    /// where it was.
    pub fn set_protocol(&mut self, protocol: &str) -> Result<(), ResourceError> {
        if matches!(&self.edge, Edge::Protocol { name, .. } if name == protocol) {
            return Ok(());
        }
        let inner = &*self.conn.inner;
        let mut registry = lock(&inner.registry);
        let mut state = lock(&self.conn.state);
        let peer = state.peer.as_ref().map(|(peer, _)| *peer);
        let (scope, per_peer) = registry.protocol(protocol, peer, &inner.limits);
        let delta = self.scope.usage_delta();
        let joining = [Some(&*scope), per_peer.as_deref(), None, None, None, None];
        if let Err(error) = scope::charge(&joining, &delta, ALWAYS) {
            drop(state);
            registry.release_protocol(protocol, peer, scope, per_peer);
            return Err(inner.denied(error));
        }
        let joined = Edge::Protocol {
            name: protocol.to_owned(),
            peer,
            protocol: scope,
            per_peer,
        };
        match std::mem::replace(&mut self.edge, joined) {
            Edge::Transient if state.peer.is_some() => state.transient.sub(&delta),
            // The connection's own transient charge still covers the stream.
            Edge::Transient => scope::sub(&mut state.merged, &delta),
            Edge::Protocol {
                name,
                peer,
                protocol,
                per_peer,
            } => {
                protocol.sub(&delta);
                if let Some(per_peer) = &per_peer {
                    per_peer.sub(&delta);
                }
                drop(state);
                registry.release_protocol(&name, peer, protocol, per_peer);
            }
        }
        Ok(())
    }

    /// The protocol agreed with [`set_protocol`](Self::set_protocol), if any.
    pub fn protocol(&self) -> Option<&str> {
        match &self.edge {
            Edge::Transient => None,
            Edge::Protocol { name, .. } => Some(name),
        }
    }

    /// Who opened the stream.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Memory charged to stream -> transient or protocol (+ protocol-peer) -> connection
    /// -> peer (or transient) -> system, all or nothing, at `priority` as
    /// [`ConnectionScope::reserve_memory`](crate::ConnectionScope::reserve_memory).
    ///
    /// # Errors
    ///
    /// [`ResourceError`] naming the scope that denied; nothing was charged.
    pub fn reserve_memory(&self, bytes: usize, priority: u8) -> Result<(), ResourceError> {
        self.charge(&scope::one(Resource::Memory, bytes as u64), priority)
    }

    /// Gives back `bytes` reserved with [`reserve_memory`](Self::reserve_memory) (at most
    /// what the stream holds).
    pub fn release_memory(&self, bytes: usize) {
        self.release(|stream| {
            let held = stream.used(Resource::Memory);
            scope::one(Resource::Memory, (bytes as u64).min(held))
        });
    }

    /// The memory the stream holds.
    pub fn memory_used(&self) -> u64 {
        self.scope.used(Resource::Memory)
    }

    /// The stream scope's usage.
    pub fn usage(&self) -> ScopeUsage {
        self.scope.usage()
    }
}

impl Drop for StreamScope {
    fn drop(&mut self) {
        self.release(Scope::usage_delta);
        if let Edge::Protocol {
            name,
            peer,
            protocol,
            per_peer,
        } = std::mem::replace(&mut self.edge, Edge::Transient)
        {
            lock(&self.conn.inner.registry).release_protocol(&name, peer, protocol, per_peer);
        }
    }
}
