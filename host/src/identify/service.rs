//! The identify service: the client (ask a new connection's peer), the server (answer
//! `/ipfs/id/1.0.0`), push (tell every peer of a change, and take a peer's pushes),
//! and applying what a peer said to the peerstore and the events.

use super::wire::{self, IdentifyInfo, IdentifyMessage};
use super::{PROTOCOL, PUSH_PROTOCOL};
use crate::book;
use crate::conn::ConnState;
use crate::events::Event;
use crate::handlers::HandlerOptions;
use crate::host::Inner;
use crate::stream::Stream;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::sync::Arc;
use tracing::{debug, warn};
use weft_connmgr::ConnectionId;

/// Inbound identify requests one peer may have open at once.
const IDENTIFY_STREAMS_PER_PEER: usize = 4;
/// Inbound identify pushes one peer may have open at once.
const IDENTIFY_PUSH_STREAMS_PER_PEER: usize = 2;

/// What to do with a message a peer sent: checked and decoded.
#[derive(Debug, PartialEq)]
pub(crate) struct Received {
    /// The decoded fields.
    pub(crate) info: IdentifyInfo,
    /// Whether the message replaces the peer's protocols: an answer always does; a
    /// push only when it lists protocols (it may leave fields out).
    pub(crate) replace_protocols: bool,
}

/// Checks a message `peer` sent (an answer, or a `push`): `None` when it carries the
/// public key of another peer, which is ignored.
pub(crate) fn receive(peer: &PeerId, msg: &IdentifyMessage, push: bool) -> Option<Received> {
    let info = IdentifyInfo::from_message(msg);
    if info
        .public_key
        .as_ref()
        .is_some_and(|k| k.to_peer_id() != *peer)
    {
        return None;
    }
    Some(Received {
        info,
        replace_protocols: !push || !msg.protocols.is_empty(),
    })
}

/// The events for what `peer` told us on `connection`: `PeerIdentified` for an answer
/// (not a push), `PeerProtocolsChanged` when its protocols changed.
pub(crate) fn events(
    peer: PeerId,
    connection: ConnectionId,
    info: &IdentifyInfo,
    push: bool,
    (added, removed): (Vec<String>, Vec<String>),
) -> Vec<Event> {
    let mut events = Vec::new();
    if !push {
        events.push(Event::PeerIdentified {
            peer,
            connection,
            agent_version: info.agent_version.clone().unwrap_or_default(),
            protocol_version: info.protocol_version.clone().unwrap_or_default(),
            protocols: info.protocols.clone(),
            listen_addrs: info.listen_addrs.clone(),
            observed_addr: info.observed_addr.clone(),
        });
    }
    if !added.is_empty() || !removed.is_empty() {
        events.push(Event::PeerProtocolsChanged {
            peer,
            added,
            removed,
        });
    }
    events
}

impl Inner {
    /// Our identify message, telling the peer it is seen at `observed`.
    fn identify_message(&self, observed: Option<&Multiaddr>) -> IdentifyMessage {
        wire::build_message(
            &self.keypair.public(),
            &self.config.protocol_version,
            &self.config.agent_version,
            &self.advertised_addrs(),
            observed,
            self.handlers.ids(),
        )
    }

    /// Asks the peer of `conn` who it is (the client side, run on each new connection).
    pub(crate) async fn request_identify(self: &Arc<Self>, conn: &Arc<ConnState>) {
        let timeout = self.config.protocol_timeout;
        let run = async {
            let mut stream = self
                .open_stream_on(conn, &[PROTOCOL])
                .await
                .map_err(|e| e.to_string())?;
            wire::read(&mut stream).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(msg)) => {
                self.hooks.identify_received(false, true);
                self.apply_identify(conn, &msg, false).await
            }
            Ok(Err(e)) => {
                self.hooks.identify_received(false, false);
                debug!(peer = %conn.peer, error = %e, "identify failed")
            }
            Err(_) => {
                self.hooks.identify_received(false, false);
                debug!(peer = %conn.peer, "identify timed out")
            }
        }
    }

    /// Stores what a peer told us and emits the events. A push may leave fields out.
    async fn apply_identify(&self, conn: &ConnState, msg: &IdentifyMessage, push: bool) {
        let Some(received) = receive(&conn.peer, msg, push) else {
            warn!(peer = %conn.peer, "identify carried a public key of another peer; ignored");
            return;
        };
        // Over a relayed connection the peer sees the relay's side, not us.
        let relayed = crate::transport::is_circuit(&conn.remote_addr);
        if let Some(observed) = received.info.observed_addr.as_ref().filter(|_| !relayed) {
            self.on_observed(conn, observed);
        }
        let dialed: Vec<Multiaddr> = self
            .lock()
            .connections_of(&conn.peer)
            .filter(|c| c.direction == weft_connmgr::Direction::Outbound)
            .map(|c| c.remote_addr.clone())
            .collect();
        let scope = book::AddrScope {
            classifier: &self.dialer.config.classifier,
            remote: &conn.remote_addr,
            dialed: &dialed,
        };
        let changed = book::on_identified(
            &self.writer,
            &conn.peer,
            &received.info,
            received.replace_protocols,
            scope,
        )
        .await;
        for event in events(conn.peer, conn.id, &received.info, push, changed) {
            self.emit(event);
        }
    }

    /// Tells every connected peer our current protocols and addresses.
    pub(crate) fn push_identify_to_all(self: &Arc<Self>) {
        if self.shutdown.is_cancelled() {
            return;
        }
        for conn in self.all_connections() {
            let inner = self.clone();
            self.tasks.spawn(async move {
                let timeout = inner.config.protocol_timeout;
                let run = async {
                    let mut stream = inner
                        .open_stream_on(&conn, &[PUSH_PROTOCOL])
                        .await
                        .map_err(|e| e.to_string())?;
                    let msg = inner.identify_message(Some(&conn.remote_addr));
                    wire::send(&mut stream, &msg)
                        .await
                        .map_err(|e| e.to_string())
                };
                match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(peer = %conn.peer, error = %e, "identify push failed"),
                    Err(_) => debug!(peer = %conn.peer, "identify push timed out"),
                }
            });
        }
    }

    /// Serves identify and takes identify pushes (the server side).
    pub(crate) fn register_identify(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.handlers.insert_exact(
            PROTOCOL.to_string(),
            Arc::new(move |mut stream: Stream| {
                let weak = weak.clone();
                Box::pin(async move {
                    let Some(inner) = weak.upgrade() else { return };
                    let observed = inner
                        .connection(&stream.connection())
                        .map(|c| c.remote_addr.clone());
                    let msg = inner.identify_message(observed.as_ref());
                    if let Err(e) = wire::send(&mut stream, &msg).await {
                        debug!(error = %e, "answering identify failed");
                    }
                })
            }),
            HandlerOptions::default()
                .with_max_inbound_streams_per_peer(Some(IDENTIFY_STREAMS_PER_PEER)),
        );
        let weak = Arc::downgrade(self);
        self.handlers.insert_exact(
            PUSH_PROTOCOL.to_string(),
            Arc::new(move |mut stream: Stream| {
                let weak = weak.clone();
                Box::pin(async move {
                    let Some(inner) = weak.upgrade() else { return };
                    let timeout = inner.config.protocol_timeout;
                    let msg = match tokio::time::timeout(timeout, wire::read(&mut stream)).await {
                        Ok(Ok(msg)) => msg,
                        Ok(Err(e)) => {
                            inner.hooks.identify_received(true, false);
                            return debug!(error = %e, "identify push malformed");
                        }
                        Err(_) => {
                            inner.hooks.identify_received(true, false);
                            return debug!("identify push timed out");
                        }
                    };
                    inner.hooks.identify_received(true, true);
                    if let Some(conn) = inner.connection(&stream.connection()) {
                        inner.apply_identify(&conn, &msg, true).await;
                    }
                })
            }),
            HandlerOptions::default()
                .with_max_inbound_streams_per_peer(Some(IDENTIFY_PUSH_STREAMS_PER_PEER)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p_identity::Keypair;

    fn message_of(key: &Keypair, protocols: &[&str]) -> IdentifyMessage {
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().unwrap();
        let observed: Multiaddr = "/ip4/10.0.0.2/tcp/5000".parse().unwrap();
        wire::build_message(
            &key.public(),
            "ipfs/0.1.0",
            "weft/test",
            &[addr],
            Some(&observed),
            protocols.iter().map(|p| p.to_string()).collect(),
        )
    }

    #[test]
    fn an_answer_is_decoded_and_replaces_the_protocols() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let got = receive(&peer, &message_of(&key, &["/a", "/b"]), false).unwrap();
        assert!(got.replace_protocols);
        assert_eq!(got.info.protocols, ["/a", "/b"]);
        assert_eq!(got.info.agent_version.as_deref(), Some("weft/test"));
        assert_eq!(
            got.info.observed_addr,
            Some("/ip4/10.0.0.2/tcp/5000".parse().unwrap())
        );
        assert_eq!(got.info.public_key, Some(key.public()));
    }

    #[test]
    fn a_key_of_another_peer_is_ignored() {
        let key = Keypair::generate_ed25519();
        let other = PeerId::random();
        assert_eq!(receive(&other, &message_of(&key, &["/a"]), false), None);
        assert_eq!(receive(&other, &message_of(&key, &["/a"]), true), None);
    }

    #[test]
    fn a_push_without_protocols_keeps_them() {
        let peer = PeerId::random();
        let push = IdentifyMessage {
            agent_version: Some("weft/next".into()),
            ..Default::default()
        };
        let got = receive(&peer, &push, true).unwrap();
        assert!(!got.replace_protocols, "the push left the field out");
        assert!(receive(&peer, &push, false).unwrap().replace_protocols);
        let with = message_of(&Keypair::generate_ed25519(), &["/c"]);
        let mut keyless = with.clone();
        keyless.public_key = None;
        assert!(receive(&peer, &keyless, true).unwrap().replace_protocols);
    }

    #[test]
    fn an_answer_is_identified_and_a_push_only_reports_changes() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let conn = ConnectionId::next();
        let info = receive(&peer, &message_of(&key, &["/a"]), false)
            .unwrap()
            .info;
        let unchanged = (vec![], vec![]);
        let answer = events(peer, conn, &info, false, unchanged.clone());
        assert!(matches!(
            answer.as_slice(),
            [Event::PeerIdentified { agent_version, protocols, connection, .. }]
                if agent_version == "weft/test" && protocols == &["/a"] && *connection == conn
        ));
        assert!(events(peer, conn, &info, true, unchanged).is_empty());
        let changed = events(
            peer,
            conn,
            &info,
            true,
            (vec!["/a".into()], vec!["/z".into()]),
        );
        assert_eq!(
            changed,
            [Event::PeerProtocolsChanged {
                peer,
                added: vec!["/a".into()],
                removed: vec!["/z".into()],
            }]
        );
        assert_eq!(
            events(peer, conn, &info, false, (vec![], vec!["/z".into()])).len(),
            2
        );
    }
}
