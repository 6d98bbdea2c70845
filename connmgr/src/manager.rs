//! The connection manager: hard limits, watermarks, tags, protection, decaying tags.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::decay::DecayFn;
use crate::limits::check;
use crate::state::{ConnRecord, DecayingTagState, DecayingValue, State};
use crate::trim::{select, TrimMode};
use crate::{
    Admission, Clock, ConfigError, ConnectionId, ConnectionLimits, ConnectionPolicy, Direction,
    LimitError, LimitKind, PendingPermit, SystemClock,
};

/// When to trim: above `high` established connections, close down to `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Trimming closes connections down to this many.
    pub low: usize,
    /// Trimming starts when established connections exceed this many.
    pub high: usize,
}

/// Settings of a [`ConnectionManager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionManagerConfig {
    /// Hard limits, refused outright.
    pub limits: ConnectionLimits,
    /// Soft limits, enforced by trimming; `None` never trims.
    pub watermarks: Option<Watermarks>,
    /// Connections younger than this are never trimmed (except by a forced trim).
    pub grace_period: Duration,
}

impl Default for ConnectionManagerConfig {
    /// No hard limits, no trimming, a 20 second grace period.
    fn default() -> Self {
        ConnectionManagerConfig {
            limits: ConnectionLimits::default(),
            watermarks: None,
            grace_period: Duration::from_secs(20),
        }
    }
}

impl ConnectionManagerConfig {
    /// Sets the hard limits.
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Trims down to `low` when established connections exceed `high`.
    pub fn with_watermarks(mut self, low: usize, high: usize) -> Self {
        self.watermarks = Some(Watermarks { low, high });
        self
    }

    /// Sets the grace period of new connections.
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }
}

/// Counters of a [`ConnectionManager`], for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionStats {
    /// Inbound connections in their handshake.
    pub pending_inbound: usize,
    /// Outbound dials in their handshake.
    pub pending_outbound: usize,
    /// Established inbound connections (closing ones included).
    pub established_inbound: usize,
    /// Established outbound connections (closing ones included).
    pub established_outbound: usize,
    /// Established connections a trim chose, not yet reported closed.
    pub closing: usize,
}

/// What the manager and its permits and tag handles share.
struct Shared {
    config: ConnectionManagerConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent before it can panic, so a poisoned
        // lock still holds usable counters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Enforces [`ConnectionLimits`] and trims established connections between
/// [`Watermarks`], by priority: protected peers never (except in a
/// [`force_trim`](Self::force_trim)), connections in their grace period never, then the
/// lowest summed tag value first, then the fewest open streams, then inbound before
/// outbound.
///
/// Cloning is cheap and clones share state: give one to the host as its
/// [`ConnectionPolicy`] and keep another to tag and protect peers.
#[derive(Clone)]
pub struct ConnectionManager {
    shared: Arc<Shared>,
}

impl fmt::Debug for ConnectionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionManager")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ConnectionManager {
    /// A manager on the system clock.
    pub fn new(config: ConnectionManagerConfig) -> Result<ConnectionManager, ConfigError> {
        ConnectionManager::with_clock(config, Arc::new(SystemClock))
    }

    /// A manager reading time from `clock` (a [`ManualClock`](crate::ManualClock) in
    /// tests).
    pub fn with_clock(
        config: ConnectionManagerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<ConnectionManager, ConfigError> {
        if let Some(Watermarks { low, high }) = config.watermarks {
            if low > high {
                return Err(ConfigError::Watermarks { low, high });
            }
        }
        Ok(ConnectionManager {
            shared: Arc::new(Shared {
                config,
                clock,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// The settings this manager runs with.
    pub fn config(&self) -> &ConnectionManagerConfig {
        &self.shared.config
    }

    /// Current counters.
    pub fn stats(&self) -> ConnectionStats {
        let state = self.shared.lock();
        ConnectionStats {
            pending_inbound: state.pending_inbound,
            pending_outbound: state.pending_outbound,
            established_inbound: state.established_inbound,
            established_outbound: state.established_outbound,
            closing: state.closing,
        }
    }

    /// The established connections, closing ones included.
    pub fn connections(&self) -> Vec<ConnectionId> {
        self.shared.lock().connections.keys().copied().collect()
    }

    /// How many established connections go to `peer`.
    pub fn connections_to(&self, peer: &PeerId) -> usize {
        self.shared.lock().connections_to(peer)
    }

    /// Sets tag `tag` on `peer` to `value`.
    ///
    /// Tags on a peer are dropped when its last connection closes (protections stay).
    pub fn tag_peer(&self, peer: PeerId, tag: &str, value: i64) {
        let mut state = self.shared.lock();
        state
            .peers
            .entry(peer)
            .or_default()
            .tags
            .insert(tag.to_owned(), value);
    }

    /// Removes tag `tag` from `peer`.
    pub fn untag_peer(&self, peer: &PeerId, tag: &str) {
        let mut state = self.shared.lock();
        if let Some(entry) = state.peers.get_mut(peer) {
            entry.tags.remove(tag);
        }
        state.drop_peer_if_empty(peer);
    }

    /// Sets tag `tag` on `peer` to `update(current)`, where `current` is 0 if unset.
    pub fn upsert_tag(&self, peer: PeerId, tag: &str, update: impl FnOnce(i64) -> i64) {
        let mut state = self.shared.lock();
        let tags = &mut state.peers.entry(peer).or_default().tags;
        let current = tags.get(tag).copied().unwrap_or(0);
        tags.insert(tag.to_owned(), update(current));
    }

    /// The value of plain tag `tag` on `peer`.
    pub fn tag_value(&self, peer: &PeerId, tag: &str) -> Option<i64> {
        let state = self.shared.lock();
        state.peers.get(peer)?.tags.get(tag).copied()
    }

    /// The summed value of every tag on `peer` now, decaying tags included: the value
    /// trimming ranks by.
    pub fn peer_value(&self, peer: &PeerId) -> i64 {
        let now = self.shared.clock.now();
        self.shared.lock().peer_value(peer, now)
    }

    /// Protects `peer` from trimming under `tag` (several tags may protect one peer).
    pub fn protect(&self, peer: PeerId, tag: &str) {
        let mut state = self.shared.lock();
        state
            .peers
            .entry(peer)
            .or_default()
            .protections
            .insert(tag.to_owned());
    }

    /// Removes the protection `tag` from `peer`; returns whether other tags still
    /// protect it.
    pub fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        let mut state = self.shared.lock();
        let still = match state.peers.get_mut(peer) {
            Some(entry) => {
                entry.protections.remove(tag);
                !entry.protections.is_empty()
            }
            None => false,
        };
        state.drop_peer_if_empty(peer);
        still
    }

    /// Whether `peer` is protected: by `tag`, or by any tag when `tag` is `None`.
    pub fn is_protected(&self, peer: &PeerId, tag: Option<&str>) -> bool {
        let state = self.shared.lock();
        match (state.peers.get(peer), tag) {
            (None, _) => false,
            (Some(entry), None) => !entry.protections.is_empty(),
            (Some(entry), Some(tag)) => entry.protections.contains(tag),
        }
    }

    /// Registers a decaying tag: its values on peers shrink by `decay` every
    /// `interval`, applied lazily against the clock (or eagerly by
    /// [`tick`](Self::tick)).
    pub fn register_decaying_tag(
        &self,
        name: &str,
        interval: Duration,
        decay: DecayFn,
    ) -> Result<DecayingTag, ConfigError> {
        if interval.is_zero() {
            return Err(ConfigError::ZeroInterval(name.to_owned()));
        }
        let mut state = self.shared.lock();
        if state.decaying.contains_key(name) {
            return Err(ConfigError::DuplicateTag(name.to_owned()));
        }
        state.decaying.insert(
            name.to_owned(),
            DecayingTagState {
                interval,
                decay,
                values: Default::default(),
            },
        );
        Ok(DecayingTag {
            shared: Arc::clone(&self.shared),
            name: name.to_owned(),
        })
    }

    /// Applies every decaying tag's decay up to `now`, dropping values that decayed
    /// away. Optional: the manager also decays lazily whenever it reads a value.
    pub fn tick(&self, now: Instant) {
        self.shared.lock().decay_all(now);
    }

    /// Like [`trim`](ConnectionPolicy::trim), but runs whenever established
    /// connections exceed the low watermark and may close protected peers and
    /// connections in their grace period (those last, in that order).
    pub fn force_trim(&self) -> Vec<ConnectionId> {
        self.run_trim(TrimMode::Forced, true)
    }

    /// What [`trim`](ConnectionPolicy::trim) (or, with `forced`,
    /// [`force_trim`](Self::force_trim)) would choose now, without marking anything as
    /// closing.
    pub fn plan_trim(&self, forced: bool) -> Vec<ConnectionId> {
        let mode = if forced {
            TrimMode::Forced
        } else {
            TrimMode::Normal
        };
        self.run_trim(mode, false)
    }

    fn run_trim(&self, mode: TrimMode, commit: bool) -> Vec<ConnectionId> {
        let Some(Watermarks { low, high }) = self.shared.config.watermarks else {
            return Vec::new();
        };
        let now = self.shared.clock.now();
        let mut state = self.shared.lock();
        let chosen = select(
            &mut state,
            low,
            high,
            self.shared.config.grace_period,
            now,
            mode,
        );
        if commit && !chosen.is_empty() {
            for id in &chosen {
                if let Some(conn) = state.connections.get_mut(id) {
                    conn.closing = true;
                }
            }
            state.closing += chosen.len();
            tracing::debug!(
                closing = chosen.len(),
                live = state.live(),
                forced = mode == TrimMode::Forced,
                "connection manager trimmed connections"
            );
        }
        chosen
    }

    /// A permit that gives back one pending slot (and its IP and relay counts) when
    /// dropped.
    fn pending_permit(
        &self,
        direction: Direction,
        ip: Option<std::net::IpAddr>,
        relay: Option<PeerId>,
    ) -> PendingPermit {
        let shared = Arc::clone(&self.shared);
        PendingPermit::new(move || {
            let mut state = shared.lock();
            match direction {
                Direction::Inbound => {
                    state.pending_inbound = state.pending_inbound.saturating_sub(1)
                }
                Direction::Outbound => {
                    state.pending_outbound = state.pending_outbound.saturating_sub(1)
                }
            }
            if let Some(ip) = ip {
                state.remove_ip(ip);
                if direction == Direction::Inbound {
                    state.remove_pending_ip(ip);
                }
            }
            if let Some(relay) = relay {
                state.remove_relay(relay);
            }
        })
    }
}

/// Logs a refusal and passes it on.
fn refused(err: LimitError) -> LimitError {
    tracing::debug!(error = %err, "connection refused");
    err
}

impl ConnectionPolicy for ConnectionManager {
    fn allow_dial(
        &self,
        peer: Option<PeerId>,
        _addr: &Multiaddr,
    ) -> Result<PendingPermit, LimitError> {
        let limits = &self.shared.config.limits;
        {
            let mut state = self.shared.lock();
            let checks = || -> Result<(), LimitError> {
                check(
                    limits.max_pending_outbound,
                    state.pending_outbound,
                    LimitKind::PendingOutbound,
                )?;
                check(
                    limits.max_established_outbound,
                    state.established_outbound,
                    LimitKind::EstablishedOutbound,
                )?;
                check(
                    limits.max_established_total,
                    state.established_total(),
                    LimitKind::EstablishedTotal,
                )?;
                if let Some(peer) = peer {
                    check(
                        limits.max_established_per_peer,
                        state.connections_to(&peer),
                        LimitKind::EstablishedPerPeer(peer),
                    )?;
                }
                Ok(())
            };
            checks().map_err(refused)?;
            state.pending_outbound += 1;
        }
        Ok(self.pending_permit(Direction::Outbound, None, None))
    }

    fn allow_inbound(
        &self,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<PendingPermit, LimitError> {
        let limits = &self.shared.config.limits;
        let ip = limits.counted_ip(remote);
        let relay = limits.counted_relay(remote);
        {
            let mut state = self.shared.lock();
            let checks = || -> Result<(), LimitError> {
                check(
                    limits.max_pending_inbound,
                    state.pending_inbound,
                    LimitKind::PendingInbound,
                )?;
                check(
                    limits.max_established_inbound,
                    state.established_inbound,
                    LimitKind::EstablishedInbound,
                )?;
                check(
                    limits.max_established_total,
                    state.established_total(),
                    LimitKind::EstablishedTotal,
                )?;
                if let Some(ip) = ip {
                    check(
                        limits.max_pending_inbound_per_ip,
                        state.pending_ip_count(&ip),
                        LimitKind::PendingPerIp(ip),
                    )?;
                    check(
                        limits.max_inbound_per_ip,
                        state.ip_count(&ip),
                        LimitKind::PerIp(ip),
                    )?;
                }
                if let Some(relay) = relay {
                    check(
                        limits.max_relayed_inbound_per_relay,
                        state.relay_count(&relay),
                        LimitKind::RelayedPerRelay(relay),
                    )?;
                }
                Ok(())
            };
            checks().map_err(refused)?;
            state.pending_inbound += 1;
            if let Some(ip) = ip {
                state.add_ip(ip);
                state.add_pending_ip(ip);
            }
            if let Some(relay) = relay {
                state.add_relay(relay);
            }
        }
        Ok(self.pending_permit(Direction::Inbound, ip, relay))
    }

    fn established(
        &self,
        permit: PendingPermit,
        conn: ConnectionId,
        peer: PeerId,
        direction: Direction,
        remote: &Multiaddr,
    ) -> Result<Admission, LimitError> {
        // The pending slot (and its IP count) is given back first, so the checks below
        // see this connection only once.
        permit.release();
        let limits = &self.shared.config.limits;
        let (ip, relay) = match direction {
            Direction::Inbound => (limits.counted_ip(remote), limits.counted_relay(remote)),
            Direction::Outbound => (None, None),
        };
        let now = self.shared.clock.now();
        let mut state = self.shared.lock();
        if state.remove_connection(conn).is_some() {
            tracing::warn!(%conn, "connection id reported established twice; replacing it");
        }
        let checks = |state: &State| -> Result<(), LimitError> {
            match direction {
                Direction::Inbound => check(
                    limits.max_established_inbound,
                    state.established_inbound,
                    LimitKind::EstablishedInbound,
                )?,
                Direction::Outbound => check(
                    limits.max_established_outbound,
                    state.established_outbound,
                    LimitKind::EstablishedOutbound,
                )?,
            }
            check(
                limits.max_established_total,
                state.established_total(),
                LimitKind::EstablishedTotal,
            )?;
            check(
                limits.max_established_per_peer,
                state.connections_to(&peer),
                LimitKind::EstablishedPerPeer(peer),
            )?;
            if let Some(ip) = ip {
                check(
                    limits.max_inbound_per_ip,
                    state.ip_count(&ip),
                    LimitKind::PerIp(ip),
                )?;
            }
            if let Some(relay) = relay {
                check(
                    limits.max_relayed_inbound_per_relay,
                    state.relay_count(&relay),
                    LimitKind::RelayedPerRelay(relay),
                )?;
            }
            Ok(())
        };
        checks(&state).map_err(refused)?;
        state.insert_connection(
            conn,
            ConnRecord {
                peer,
                direction,
                opened_at: now,
                streams: 0,
                ip,
                relay,
                closing: false,
            },
        );
        let over = self
            .shared
            .config
            .watermarks
            .is_some_and(|w| state.live() > w.high);
        Ok(if over {
            Admission::OverHighWatermark
        } else {
            Admission::Accepted
        })
    }

    fn closed(&self, conn: ConnectionId) {
        self.shared.lock().remove_connection(conn);
    }

    fn stream_count_changed(&self, conn: ConnectionId, streams: usize) {
        if let Some(record) = self.shared.lock().connections.get_mut(&conn) {
            record.streams = streams;
        }
    }

    fn trim(&self) -> Vec<ConnectionId> {
        self.run_trim(TrimMode::Normal, true)
    }

    fn protect(&self, peer: PeerId, tag: &str) {
        ConnectionManager::protect(self, peer, tag)
    }

    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        ConnectionManager::unprotect(self, peer, tag)
    }

    fn tag_peer(&self, peer: PeerId, tag: &str, value: i64) {
        ConnectionManager::tag_peer(self, peer, tag, value)
    }

    fn untag_peer(&self, peer: &PeerId, tag: &str) {
        ConnectionManager::untag_peer(self, peer, tag)
    }
}

/// A handle on a registered decaying tag: bump, read and remove its value on peers.
#[derive(Clone)]
pub struct DecayingTag {
    shared: Arc<Shared>,
    name: String,
}

impl fmt::Debug for DecayingTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecayingTag")
            .field("name", &self.name)
            .finish()
    }
}

impl DecayingTag {
    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `delta` to the tag's value on `peer` (after decaying it up to now).
    /// Does nothing if the tag was closed.
    pub fn bump(&self, peer: PeerId, delta: i64) {
        let now = self.shared.clock.now();
        let mut state = self.shared.lock();
        let Some(tag) = state.decaying.get_mut(&self.name) else {
            return;
        };
        let current = tag.values.get(&peer).and_then(|v| tag.decayed(*v, now));
        let updated = match current {
            Some(v) => DecayingValue {
                value: v.value.saturating_add(delta),
                since: v.since,
            },
            None => DecayingValue {
                value: delta,
                since: now,
            },
        };
        tag.values.insert(peer, updated);
    }

    /// The tag's value on `peer` now, if it has one.
    pub fn value(&self, peer: &PeerId) -> Option<i64> {
        let now = self.shared.clock.now();
        let state = self.shared.lock();
        let tag = state.decaying.get(&self.name)?;
        let v = tag.values.get(peer)?;
        tag.decayed(*v, now).map(|v| v.value)
    }

    /// Removes the tag's value from `peer`.
    pub fn remove(&self, peer: &PeerId) {
        if let Some(tag) = self.shared.lock().decaying.get_mut(&self.name) {
            tag.values.remove(peer);
        }
    }

    /// Unregisters the tag and drops its values on every peer.
    pub fn close(self) {
        self.shared.lock().decaying.remove(&self.name);
    }
}
