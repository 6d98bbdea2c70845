//! Change notifications sent to subscribers.

use std::sync::{Arc, Mutex, PoisonError};

use libp2p_identity::PeerId;
use tokio::sync::broadcast;

/// A change in the store. Subscribe with [`crate::PeerStore::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerStoreEvent {
    /// The address set of `peer` changed (added, removed, expired by `gc`, or new TTLs).
    AddressesChanged {
        /// The peer.
        peer: PeerId,
    },
    /// A public key was stored for `peer` for the first time.
    KeyAdded {
        /// The peer.
        peer: PeerId,
    },
    /// The protocols of `peer` changed.
    ProtocolsChanged {
        /// The peer.
        peer: PeerId,
        /// Protocols now supported that were not before.
        added: Vec<String>,
        /// Protocols no longer supported.
        removed: Vec<String>,
    },
    /// The metadata entry `key` of `peer` was set or removed.
    MetadataChanged {
        /// The peer.
        peer: PeerId,
        /// The metadata key.
        key: String,
    },
    /// `peer` and all its data were removed by [`crate::PeerStore::remove_peer`].
    PeerRemoved {
        /// The peer.
        peer: PeerId,
    },
    /// `peer` and all its data were evicted to keep the store within
    /// [`crate::Limits::max_peers`].
    PeerEvicted {
        /// The peer.
        peer: PeerId,
    },
}

/// The sending half shared by a store: bounded, never blocks a writer; a subscriber that
/// falls more than the capacity behind receives `RecvError::Lagged` and skips ahead.
///
/// A deferring sender (see [`EventSender::deferring`]) holds events back until
/// [`EventSender::release`], so a batch announces its changes only once committed.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    sender: broadcast::Sender<PeerStoreEvent>,
    deferred: Option<Arc<Mutex<Vec<PeerStoreEvent>>>>,
}

impl EventSender {
    pub(crate) fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            deferred: None,
        }
    }

    /// A sender to the same subscribers that holds events until [`Self::release`].
    #[cfg_attr(not(feature = "redb"), allow(dead_code))]
    pub(crate) fn deferring(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            deferred: Some(Arc::default()),
        }
    }

    /// Sends the events held back by a deferring sender.
    #[cfg_attr(not(feature = "redb"), allow(dead_code))]
    pub(crate) fn release(&self) {
        if let Some(deferred) = &self.deferred {
            let events =
                std::mem::take(&mut *deferred.lock().unwrap_or_else(PoisonError::into_inner));
            for event in events {
                let _ = self.sender.send(event);
            }
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<PeerStoreEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn send(&self, event: PeerStoreEvent) {
        if let Some(deferred) = &self.deferred {
            deferred
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event);
            return;
        }
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    pub(crate) fn send_all(&self, events: impl IntoIterator<Item = PeerStoreEvent>) {
        for event in events {
            self.send(event);
        }
    }
}
