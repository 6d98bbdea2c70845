//! The stream handler registry: exact protocol ids and match functions.

use crate::stream::Stream;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use weft_upgrader::BoxFuture;

/// What a handler does with an inbound stream. It runs in its own task.
pub type Handler = Arc<dyn Fn(Stream) -> BoxFuture<'static, ()> + Send + Sync>;

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
}

impl Entry {
    fn accepts(&self, proposed: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => self.id == proposed,
            Matcher::Function(f) => f(proposed),
        }
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

/// Options for a handler registration.
#[derive(Debug, Clone, Default)]
pub struct HandlerOptions {
    /// At most this many inbound streams of this protocol run at once; more are reset.
    pub max_inbound_streams: Option<usize>,
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
            HandlerOptions {
                max_inbound_streams: Some(2),
            },
        );
        let e = h.find("/a").unwrap();
        let s1 = e.try_acquire().unwrap();
        let _s2 = e.try_acquire().unwrap();
        assert!(e.try_acquire().is_none());
        drop(s1);
        assert!(e.try_acquire().is_some());
    }
}
