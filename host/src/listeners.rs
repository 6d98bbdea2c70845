//! Listeners: listening on an address, closing a listener, and the accept loop that
//! hands each accepted socket to admission (retrying with a backoff when accepting
//! fails, so `EMFILE` and friends do not end the listener).

use crate::error::ListenError;
use crate::events::Event;
use crate::host::Inner;
use crate::transport::{split_peer_id, Listener, TransportError};
use multiaddr::Multiaddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The first pause after a failed accept (doubling up to [`ACCEPT_BACKOFF_MAX`]).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The pause after another failed accept, given the last one.
fn next_backoff(last: Duration) -> Duration {
    (last * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX)
}

struct ListenerEntry {
    /// The addresses as the transport bound them (`0.0.0.0` stays unspecified).
    bound: Vec<Multiaddr>,
    /// The addresses reported and advertised: `bound` with unspecified IPs
    /// replaced by the interfaces' addresses.
    addrs: Vec<Multiaddr>,
    stop: CancellationToken,
}

/// The host's listeners and the addresses each listens on.
#[derive(Default)]
pub(crate) struct Listeners {
    entries: Vec<ListenerEntry>,
}

impl Listeners {
    fn add(&mut self, bound: Vec<Multiaddr>, addrs: Vec<Multiaddr>, stop: CancellationToken) {
        self.entries.push(ListenerEntry { bound, addrs, stop });
    }

    /// Forgets the listener that bound `bound`; returns the addresses it reported last.
    fn remove(&mut self, bound: &[Multiaddr]) -> Option<Vec<Multiaddr>> {
        let i = self.entries.iter().position(|l| l.bound == bound)?;
        Some(self.entries.remove(i).addrs)
    }

    /// Stops the listener that has `addr` among its addresses, bound or reported;
    /// false if none has.
    fn stop(&self, addr: &Multiaddr) -> bool {
        let found = self
            .entries
            .iter()
            .find(|l| l.addrs.contains(addr) || l.bound.contains(addr));
        match found {
            Some(l) => {
                l.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Every address listened on, as reported (dialable: no unspecified IP while an
    /// interface of its family has an address).
    fn addrs(&self) -> Vec<Multiaddr> {
        self.entries.iter().flat_map(|l| l.addrs.clone()).collect()
    }

    /// Re-expands every listener bound to an unspecified IP with `expand` (the
    /// interfaces as they are now); returns the addresses gained and lost.
    fn refresh(
        &mut self,
        mut expand: impl FnMut(&[Multiaddr]) -> Vec<Multiaddr>,
    ) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
        let (mut gained, mut lost) = (Vec::new(), Vec::new());
        for entry in self
            .entries
            .iter_mut()
            .filter(|l| crate::interfaces::any_unspecified(&l.bound))
        {
            let now = expand(&entry.bound);
            gained.extend(now.iter().filter(|a| !entry.addrs.contains(a)).cloned());
            lost.extend(entry.addrs.iter().filter(|a| !now.contains(a)).cloned());
            entry.addrs = now;
        }
        (gained, lost)
    }
}

impl Inner {
    /// The addresses the host listens on.
    pub(crate) fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.lock().listeners.addrs()
    }

    /// Listens on an address; returns the actual addresses (port 0 resolved; on
    /// `0.0.0.0` or `::`, one per interface address).
    pub(crate) async fn listen(
        self: &Arc<Self>,
        addr: &Multiaddr,
    ) -> Result<Vec<Multiaddr>, ListenError> {
        if self.shutdown.is_cancelled() {
            return Err(ListenError::Shutdown);
        }
        let (bare, peer) = split_peer_id(addr);
        if let Some(peer) = peer.filter(|p| *p != self.peer_id) {
            return Err(ListenError::WrongPeerId(peer));
        }
        let transport = self
            .transports
            .iter()
            .find(|t| t.can_listen(&bare))
            .ok_or_else(|| ListenError::Unsupported(bare.clone()))?;
        let listener = transport.listen(&bare).await?;
        let bound = listener.local_addrs();
        let addrs = crate::interfaces::expand(&bound);
        let stop = self.shutdown.child_token();
        self.lock()
            .listeners
            .add(bound.clone(), addrs.clone(), stop.clone());
        info!(?addrs, "listening");
        self.emit(Event::Listen {
            addrs: addrs.clone(),
        });
        let weak = Arc::downgrade(self);
        self.tasks
            .spawn(accept_loop(weak, listener, stop, bound, addrs.clone()));
        self.push_identify_to_all();
        Ok(addrs)
    }

    /// Stops listening on the listener that has `addr` among its addresses.
    pub(crate) fn close_listener(&self, addr: &Multiaddr) -> bool {
        self.lock().listeners.stop(addr)
    }

    /// Re-reads the interfaces for listeners on `0.0.0.0` or `::` (run by the
    /// maintenance tick): an address an interface gained is reported with
    /// [`Event::Listen`], one it lost with [`Event::ListenClose`], and peers are told
    /// by identify push.
    pub(crate) fn refresh_listen_addrs(self: &Arc<Self>) {
        // The interfaces are read once a tick (and only if a listener needs them).
        let mut interfaces = None;
        let (gained, lost) = self.lock().listeners.refresh(|bound| {
            interfaces
                .get_or_insert_with(crate::interfaces::Interfaces::read)
                .expand(bound)
        });
        if gained.is_empty() && lost.is_empty() {
            return;
        }
        info!(?gained, ?lost, "interface addresses changed");
        if !lost.is_empty() {
            self.emit(Event::ListenClose { addrs: lost });
        }
        if !gained.is_empty() {
            self.emit(Event::Listen { addrs: gained });
        }
        self.push_identify_to_all();
    }
}

async fn accept_loop(
    weak: Weak<Inner>,
    mut listener: Box<dyn Listener>,
    stop: CancellationToken,
    bound: Vec<Multiaddr>,
    addrs: Vec<Multiaddr>,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Some(inner) = weak.upgrade() else { break };
        match accepted {
            Ok(transported) => {
                backoff = ACCEPT_BACKOFF_MIN;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = inner.admit_inbound_connection(transported) => {}
                }
            }
            Err(TransportError::Closed) => break,
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS...: wait for resources to come back, keep
                // listening.
                warn!(error = %e, ?backoff, "accepting a connection failed; retrying");
                drop(inner);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = next_backoff(backoff);
            }
        }
    }
    drop(listener);
    if let Some(inner) = weak.upgrade() {
        let addrs = inner.lock().listeners.remove(&bound).unwrap_or(addrs);
        inner.emit(Event::ListenClose { addrs });
        inner.push_identify_to_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_backoff_doubles_up_to_a_second() {
        let mut d = ACCEPT_BACKOFF_MIN;
        let mut seen = vec![d];
        while d < ACCEPT_BACKOFF_MAX {
            d = next_backoff(d);
            seen.push(d);
        }
        assert_eq!(seen.len(), 8, "{seen:?}");
        assert_eq!(seen[1], Duration::from_millis(20));
        assert_eq!(next_backoff(ACCEPT_BACKOFF_MAX), ACCEPT_BACKOFF_MAX);
        assert_eq!(next_backoff(Duration::ZERO), ACCEPT_BACKOFF_MIN);
    }

    #[test]
    fn a_listener_is_stopped_by_any_of_its_addresses_and_forgotten_when_it_ends() {
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip6/::1/tcp/1".parse().unwrap();
        let c: Multiaddr = "/ip4/127.0.0.1/tcp/2".parse().unwrap();
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        let mut l = Listeners::default();
        let any: Multiaddr = "/ip4/0.0.0.0/tcp/2".parse().unwrap();
        l.add(
            vec![a.clone(), b.clone()],
            vec![a.clone(), b.clone()],
            first.clone(),
        );
        l.add(vec![any.clone()], vec![c.clone()], second.clone());
        assert_eq!(l.addrs(), [a.clone(), b.clone(), c.clone()]);
        assert!(l.stop(&b));
        assert!(first.is_cancelled() && !second.is_cancelled());
        assert!(!l.stop(&"/ip4/127.0.0.1/tcp/3".parse().unwrap()));
        assert_eq!(
            l.remove(&[a.clone(), b.clone()]),
            Some(vec![a.clone(), b.clone()])
        );
        assert_eq!(l.addrs(), [c]);
        assert!(!l.stop(&a), "a removed listener is not found");
        // A listener on 0.0.0.0 is stopped by the address it bound, too.
        assert!(l.stop(&any));
        assert!(second.is_cancelled());
    }

    #[test]
    fn a_refresh_reports_what_the_interfaces_gained_and_lost() {
        let addr = |s: &str| -> Multiaddr { s.parse().unwrap() };
        let any = addr("/ip4/0.0.0.0/tcp/7");
        let fixed = addr("/ip4/127.0.0.1/tcp/8");
        let (old, kept, new) = (
            addr("/ip4/10.0.0.1/tcp/7"),
            addr("/ip4/127.0.0.1/tcp/7"),
            addr("/ip4/192.0.2.9/tcp/7"),
        );
        let mut l = Listeners::default();
        l.add(
            vec![any.clone()],
            vec![kept.clone(), old.clone()],
            CancellationToken::new(),
        );
        l.add(
            vec![fixed.clone()],
            vec![fixed.clone()],
            CancellationToken::new(),
        );
        let now = |bound: &[Multiaddr]| {
            assert_eq!(
                bound,
                std::slice::from_ref(&any),
                "only unspecified listeners are re-read"
            );
            vec![kept.clone(), new.clone()]
        };
        assert_eq!(l.refresh(now), (vec![new.clone()], vec![old.clone()]));
        assert_eq!(l.addrs(), [kept.clone(), new.clone(), fixed.clone()]);
        assert_eq!(l.refresh(now), (vec![], vec![]), "nothing changed");
    }
}
