//! The [`ResourceManager`]: the fixed scopes, the registry of scopes created on demand,
//! and the entry point for connections.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::connection::ConnectionScope;
use crate::denials::{DenialCounters, Denials};
use crate::error::{ResourceError, ScopeName};
use crate::limits::Limits;
use crate::registry::Registry;
use crate::resource::Direction;
use crate::scope::{self, Scope, ALWAYS};
use crate::stats::{ScopeUsage, Stats};

/// Locks `mutex`, also after a panic elsewhere: every critical section leaves the
/// counters consistent before it could panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every handle of one manager shares.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) limits: Limits,
    pub(crate) system: Arc<Scope>,
    pub(crate) transient: Arc<Scope>,
    pub(crate) allowlist_system: Arc<Scope>,
    pub(crate) allowlist_transient: Arc<Scope>,
    /// Taken when a scope joins or leaves a peer or protocol, never per reservation.
    /// Lock order: the registry before a connection's state.
    pub(crate) registry: Mutex<Registry>,
    /// Refusals so far, by scope class and resource.
    pub(crate) denials: DenialCounters,
}

impl Inner {
    /// Counts `error` as a refusal and hands it back.
    pub(crate) fn denied(&self, error: ResourceError) -> ResourceError {
        self.denials.record(&error);
        error
    }
}

/// Hard limits on memory, file descriptors, connections and streams, counted in scopes.
///
/// Cheap to clone: clones share one manager. Thread-safe and synchronous; reservations
/// never allocate and take one per-connection lock for a few instructions.
#[derive(Debug, Clone)]
pub struct ResourceManager {
    inner: Arc<Inner>,
}

impl ResourceManager {
    /// A manager enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        let fixed = |name, limit| Arc::new(Scope::new(name, limit));
        let inner = Inner {
            system: fixed(ScopeName::System, limits.system),
            transient: fixed(ScopeName::Transient, limits.transient),
            allowlist_system: fixed(ScopeName::AllowlistSystem, limits.allowlist_system),
            allowlist_transient: fixed(ScopeName::AllowlistTransient, limits.allowlist_transient),
            registry: Mutex::new(Registry::default()),
            denials: DenialCounters::default(),
            limits,
        };
        ResourceManager {
            inner: Arc::new(inner),
        }
    }

    /// The limits this manager enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// A connection before its handshake ends: charged to system + transient (or the
    /// allowlist's system + transient when `remote` is allowlisted and the normal scopes
    /// deny), counting one connection of `direction`, one pending inbound connection if
    /// inbound, and one fd if `uses_fd`.
    ///
    /// # Errors
    ///
    /// [`ResourceError`] naming the scope that denied (the allowlist's, if it was tried).
    pub fn open_connection(
        &self,
        direction: Direction,
        remote: &Multiaddr,
        uses_fd: bool,
    ) -> Result<ConnectionScope, ResourceError> {
        let inner = &self.inner;
        let own = Scope::new(ScopeName::Connection, inner.limits.connection);
        let delta = scope::connection(direction, uses_fd);
        let attempt = |system: &Scope, transient: &Scope| {
            let path = [Some(&own), Some(system), Some(transient), None, None, None];
            scope::charge(&path, &delta, ALWAYS)
        };
        let allowlisted = match attempt(&inner.system, &inner.transient) {
            Ok(()) => false,
            Err(error) if inner.limits.allowlist.contains(remote) => {
                attempt(&inner.allowlist_system, &inner.allowlist_transient)
                    .map_err(|e| inner.denied(e))?;
                tracing::debug!(%remote, denied = %error, "resource manager: admitted through the allowlist");
                true
            }
            Err(error) => return Err(inner.denied(error)),
        };
        let (system, transient) = if allowlisted {
            (&inner.allowlist_system, &inner.allowlist_transient)
        } else {
            (&inner.system, &inner.transient)
        };
        Ok(ConnectionScope::new(
            inner.clone(),
            own,
            delta,
            system.clone(),
            transient.clone(),
            allowlisted,
        ))
    }

    /// Usage snapshot for diagnostics and metrics.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let registry = lock(&inner.registry);
        Stats {
            system: inner.system.usage(),
            transient: inner.transient.usage(),
            allowlist_system: inner.allowlist_system.usage(),
            allowlist_transient: inner.allowlist_transient.usage(),
            protocols: registry
                .protocols()
                .map(|(name, scope)| (name.to_owned(), scope.usage()))
                .collect(),
            peers: registry.peer_count(),
            protocol_peers: registry.protocol_peer_count(),
        }
    }

    /// How many reservations each scope class refused so far, per resource (every
    /// `ResourceError` a caller of this manager or its scopes received).
    pub fn denials(&self) -> Denials {
        self.inner.denials.snapshot()
    }

    /// The usage of `peer`'s scope, if it is live.
    pub fn peer_usage(&self, peer: &PeerId) -> Option<ScopeUsage> {
        lock(&self.inner.registry).find_peer(peer).map(Scope::usage)
    }

    /// The usage of the scope of `protocol` with `peer`, if it is live.
    pub fn protocol_peer_usage(&self, protocol: &str, peer: &PeerId) -> Option<ScopeUsage> {
        lock(&self.inner.registry)
            .find_protocol_peer(protocol, peer)
            .map(Scope::usage)
    }
}
