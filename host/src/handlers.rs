//! The stream handler registry: exact protocol ids and match functions, and the
//! inbound stream slots (per handler and per peer) that multistream-select consults
//! before it accepts a proposal.

use crate::stream::Stream;
use libp2p_identity::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tracing::debug;
use weft_resource_manager::StreamScope;
use weft_upgrader::BoxFuture;

/// Inbound streams of one protocol that one peer may have open at once, unless the
/// handler's [`HandlerOptions`] say otherwise: half of what one yamux connection
/// carries (512 streams), so one peer cannot fill a connection's worth of one protocol.
pub const DEFAULT_MAX_INBOUND_STREAMS_PER_PEER: usize = 256;

/// What a handler does with an inbound stream. It runs in its own task.
pub(crate) type Handler = Arc<dyn Fn(Stream) -> BoxFuture<'static, ()> + Send + Sync>;

/// A predicate over a proposed protocol id.
pub type MatchFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How a handler is found for a proposed id.
#[derive(Clone)]
enum Matcher {
    Exact,
    Function(MatchFn),
}

/// One registered handler.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The id under which it was registered (and which identify advertises).
    pub(crate) id: String,
    matcher: Matcher,
    pub(crate) handler: Handler,
    /// At most this many inbound streams run at once (None: unbounded).
    pub(crate) max_inbound: Option<usize>,
    pub(crate) active: Arc<AtomicUsize>,
    /// At most this many inbound streams per peer (None: unbounded).
    pub(crate) per_peer: Option<PerPeerLimit>,
    /// Whether its requests are safe to run twice, so it may serve early (0-RTT,
    /// replayable) streams before the handshake completes.
    pub(crate) replayable: bool,
}

impl Entry {
    fn accepts(&self, proposed: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => self.id == proposed,
            Matcher::Function(f) => f(proposed),
        }
    }

    /// Takes one inbound slot of this handler for a stream of `peer`: one of the
    /// handler's and one of the peer's, if both limits allow.
    pub(crate) fn try_acquire_for(&self, peer: PeerId) -> Option<Slots> {
        let handler = self.try_acquire()?;
        let peer = match &self.per_peer {
            Some(limit) => Some(limit.try_acquire(peer)?),
            None => None,
        };
        Some(Slots {
            _handler: handler,
            _peer: peer,
        })
    }

    /// Takes one inbound slot, if the limit allows.
    pub(crate) fn try_acquire(&self) -> Option<InboundSlot> {
        let mut current = self.active.load(Ordering::Relaxed);
        loop {
            if self.max_inbound.is_some_and(|max| current >= max) {
                return None;
            }
            match self.active.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(InboundSlot(self.active.clone())),
                Err(seen) => current = seen,
            }
        }
    }
}

/// A taken inbound stream slot; released on drop.
pub(crate) struct InboundSlot(Arc<AtomicUsize>);

impl Drop for InboundSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slots one admitted inbound stream holds; released on drop.
pub(crate) struct Slots {
    _handler: InboundSlot,
    _peer: Option<PerPeerSlot>,
}

/// Options for a handler registration.
///
/// A stream over a limit is refused with `na` during multistream-select, so the
/// remote sees "protocol not supported" (a lazy proposal: a read failing with
/// `ConnectionRefused`), never an accepted stream that is then reset.
///
/// More options will come: start from [`HandlerOptions::default`] and use the
/// `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// At most this many inbound streams of this protocol run at once, all peers
    /// together (default: unbounded; the resource manager's protocol scope still
    /// bounds them).
    pub max_inbound_streams: Option<usize>,
    /// At most this many inbound streams of this protocol per peer at once (default
    /// [`DEFAULT_MAX_INBOUND_STREAMS_PER_PEER`]).
    pub max_inbound_streams_per_peer: Option<usize>,
    /// Whether the handler's requests are safe to run twice (default false).
    ///
    /// A stream a peer opened with early data (QUIC 0-RTT on a resumed session) may
    /// be a recording an attacker replays. Only a handler that accepts replayable
    /// requests gets such a stream at once; any other gets it once the connection's
    /// handshake has completed (which a replayed one never does). Ping and perf
    /// accept them; identify push does not.
    pub accepts_replayable: bool,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions {
            max_inbound_streams: None,
            max_inbound_streams_per_peer: Some(DEFAULT_MAX_INBOUND_STREAMS_PER_PEER),
            accepts_replayable: false,
        }
    }
}

impl HandlerOptions {
    /// Bounds the inbound streams of this protocol, all peers together.
    pub fn with_max_inbound_streams(mut self, limit: usize) -> Self {
        self.max_inbound_streams = Some(limit);
        self
    }

    /// Bounds the inbound streams of this protocol per peer (`None`: unbounded).
    pub fn with_max_inbound_streams_per_peer(mut self, limit: Option<usize>) -> Self {
        self.max_inbound_streams_per_peer = limit;
        self
    }

    /// Declares whether the handler's requests are safe to run twice, so that it may
    /// serve early (0-RTT, replayable) streams ([`HandlerOptions::accepts_replayable`]).
    pub fn with_replayable(mut self, accepts: bool) -> Self {
        self.accepts_replayable = accepts;
        self
    }
}

/// Counts the inbound streams each peer has open, refusing more than a limit.
#[derive(Debug, Clone)]
pub(crate) struct PerPeerLimit {
    limit: usize,
    active: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One admitted stream; gives its slot back when dropped.
#[derive(Debug)]
pub(crate) struct PerPeerSlot {
    peer: PeerId,
    active: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl PerPeerLimit {
    /// At most `limit` streams per peer.
    pub(crate) fn new(limit: usize) -> Self {
        PerPeerLimit {
            limit,
            active: Arc::default(),
        }
    }

    /// A slot for one more stream of `peer`, unless it has `limit` already.
    pub(crate) fn try_acquire(&self, peer: PeerId) -> Option<PerPeerSlot> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let count = active.entry(peer).or_insert(0);
        if *count >= self.limit {
            if *count == 0 {
                active.remove(&peer);
            }
            return None;
        }
        *count += 1;
        Some(PerPeerSlot {
            peer,
            active: self.active.clone(),
        })
    }

    /// How many peers hold at least one slot.
    #[cfg(test)]
    pub(crate) fn peers(&self) -> usize {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for PerPeerSlot {
    fn drop(&mut self) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = active.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                active.remove(&self.peer);
            }
        }
    }
}

/// The registry. Reads (every inbound stream) take a snapshot; writes are rare.
#[derive(Default)]
pub(crate) struct Handlers {
    exact: RwLock<HashMap<String, Entry>>,
    functions: RwLock<Vec<Entry>>,
}

impl Handlers {
    pub(crate) fn insert_exact(&self, id: String, handler: Handler, options: HandlerOptions) {
        let entry = Entry {
            id: id.clone(),
            matcher: Matcher::Exact,
            handler,
            max_inbound: options.max_inbound_streams,
            active: Arc::new(AtomicUsize::new(0)),
            per_peer: options.max_inbound_streams_per_peer.map(PerPeerLimit::new),
            replayable: options.accepts_replayable,
        };
        if let Ok(mut map) = self.exact.write() {
            map.insert(id, entry);
        }
    }

    pub(crate) fn insert_match(
        &self,
        id: String,
        matcher: MatchFn,
        handler: Handler,
        options: HandlerOptions,
    ) {
        let entry = Entry {
            id: id.clone(),
            matcher: Matcher::Function(matcher),
            handler,
            max_inbound: options.max_inbound_streams,
            active: Arc::new(AtomicUsize::new(0)),
            per_peer: options.max_inbound_streams_per_peer.map(PerPeerLimit::new),
            replayable: options.accepts_replayable,
        };
        if let Ok(mut list) = self.functions.write() {
            list.retain(|e| e.id != id);
            list.push(entry);
        }
    }

    /// Removes the handler registered under `id`; true if there was one.
    pub(crate) fn remove(&self, id: &str) -> bool {
        let removed_exact = self
            .exact
            .write()
            .map(|mut m| m.remove(id).is_some())
            .unwrap_or(false);
        let removed_fn = self
            .functions
            .write()
            .map(|mut l| {
                let before = l.len();
                l.retain(|e| e.id != id);
                before != l.len()
            })
            .unwrap_or(false);
        removed_exact || removed_fn
    }

    /// The handler for a proposed id: exact ids first, then match functions in
    /// registration order.
    pub(crate) fn find(&self, proposed: &str) -> Option<Entry> {
        if let Some(e) = self
            .exact
            .read()
            .ok()
            .and_then(|m| m.get(proposed).cloned())
        {
            return Some(e);
        }
        self.functions
            .read()
            .ok()?
            .iter()
            .find(|e| e.accepts(proposed))
            .cloned()
    }

    /// The registered ids, sorted (what identify advertises).
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .exact
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Ok(list) = self.functions.read() {
            ids.extend(list.iter().map(|e| e.id.clone()));
        }
        ids.sort();
        ids.dedup();
        ids
    }
}

impl weft_mss::ProtocolMatcher for Handlers {
    fn matches(&self, proposed: &str) -> bool {
        self.find(proposed).is_some()
    }

    fn supported(&self) -> Vec<String> {
        self.ids()
    }
}

/// A handler and the slots one inbound stream took from it.
pub(crate) struct Admitted {
    /// The id multistream-select agreed on.
    pub(crate) protocol: String,
    pub(crate) entry: Entry,
    _slots: Slots,
}

/// The matcher of one inbound stream from `peer`: a proposal is accepted only if a
/// handler takes it AND a slot is free for this peer now, so a stream over its
/// slot gets `na` from multistream-select instead of an accept and a reset. The
/// slots taken at match time travel with the stream to its handler.
pub(crate) struct InboundMatcher<'a> {
    handlers: &'a Handlers,
    peer: PeerId,
    state: Mutex<MatchState>,
}

struct MatchState {
    admitted: Option<Admitted>,
    /// The stream's resource scope: moved to the protocol's scope at match time.
    scope: Option<StreamScope>,
}

impl<'a> InboundMatcher<'a> {
    pub(crate) fn new(handlers: &'a Handlers, peer: PeerId, scope: Option<StreamScope>) -> Self {
        InboundMatcher {
            handlers,
            peer,
            state: Mutex::new(MatchState {
                admitted: None,
                scope,
            }),
        }
    }

    /// The handler and slots of the accepted proposal `protocol`, and the stream's
    /// scope (now in the protocol's scope).
    pub(crate) fn into_admitted(self, protocol: &str) -> Option<(Admitted, Option<StreamScope>)> {
        let state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let admitted = state.admitted?;
        (admitted.protocol == protocol).then_some((admitted, state.scope))
    }
}

impl weft_mss::ProtocolMatcher for InboundMatcher<'_> {
    fn matches(&self, proposed: &str) -> bool {
        let Some(entry) = self.handlers.find(proposed) else {
            return false;
        };
        let Some(slots) = entry.try_acquire_for(self.peer) else {
            debug!(peer = %self.peer, protocol = %proposed, "inbound stream over its slot; answering na");
            return false;
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(scope) = state.scope.as_mut() {
            if let Err(e) = scope.set_protocol(proposed) {
                debug!(peer = %self.peer, protocol = %proposed, error = %e, "inbound stream denied by the resource manager; answering na");
                return false;
            }
        }
        // multistream-select ends at the first accepted proposal; a second one would
        // replace (and release) the first.
        state.admitted = Some(Admitted {
            protocol: proposed.to_string(),
            entry,
            _slots: slots,
        });
        true
    }

    fn supported(&self) -> Vec<String> {
        self.handlers.ids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Handler {
        Arc::new(|_s| Box::pin(async {}))
    }

    #[test]
    fn exact_ids_win_over_match_functions() {
        let h = Handlers::default();
        h.insert_match(
            "/echo".into(),
            Arc::new(|p| p.starts_with("/echo/")),
            noop(),
            Default::default(),
        );
        h.insert_exact("/echo/2.0.0".into(), noop(), Default::default());
        assert_eq!(h.find("/echo/2.0.0").unwrap().id, "/echo/2.0.0");
        assert_eq!(h.find("/echo/1.0.0").unwrap().id, "/echo");
        assert!(h.find("/other").is_none());
        assert_eq!(
            h.ids(),
            vec!["/echo".to_string(), "/echo/2.0.0".to_string()]
        );
        assert!(h.remove("/echo"));
        assert!(h.find("/echo/1.0.0").is_none());
        assert!(!h.remove("/echo"));
    }

    #[test]
    fn inbound_slots_are_bounded_and_released() {
        let h = Handlers::default();
        h.insert_exact(
            "/a".into(),
            noop(),
            HandlerOptions::default().with_max_inbound_streams(2),
        );
        let e = h.find("/a").unwrap();
        let s1 = e.try_acquire().unwrap();
        let _s2 = e.try_acquire().unwrap();
        assert!(e.try_acquire().is_none());
        drop(s1);
        assert!(e.try_acquire().is_some());
    }

    #[test]
    fn per_peer_limit_and_slots_come_back() {
        let limit = PerPeerLimit::new(2);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = limit.try_acquire(a).unwrap();
        let _a2 = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none());
        assert!(limit.try_acquire(b).is_some());
        drop(a1);
        assert!(limit.try_acquire(a).is_some());
        assert_eq!(limit.peers(), 1, "b's slot was dropped, a holds one");
        assert!(PerPeerLimit::new(0).try_acquire(a).is_none());
        assert_eq!(PerPeerLimit::new(0).peers(), 0);
    }

    #[test]
    fn the_matcher_consults_the_peer_slots_at_match_time() {
        use weft_mss::ProtocolMatcher;
        let h = Handlers::default();
        h.insert_exact(
            "/p".into(),
            noop(),
            HandlerOptions::default().with_max_inbound_streams_per_peer(Some(1)),
        );
        let (a, b) = (PeerId::random(), PeerId::random());
        let first = InboundMatcher::new(&h, a, None);
        assert!(first.matches("/p"));
        let held = first.into_admitted("/p").expect("admitted");
        assert!(held.1.is_none(), "no scope was given");
        // The same peer is over its slot: the proposal is refused (na) ...
        let second = InboundMatcher::new(&h, a, None);
        assert!(!second.matches("/p"));
        assert!(second.into_admitted("/p").is_none());
        // ... another peer is not, and neither is the same peer once the slot is back.
        assert!(InboundMatcher::new(&h, b, None).matches("/p"));
        drop(held);
        assert!(InboundMatcher::new(&h, a, None).matches("/p"));
        // A matcher dropped without a handler (negotiation failed) gives its slot back.
        let failed = InboundMatcher::new(&h, a, None);
        assert!(failed.matches("/p"));
        drop(failed);
        assert!(InboundMatcher::new(&h, a, None).matches("/p"));
        assert!(!InboundMatcher::new(&h, a, None).matches("/other"));
    }
}
