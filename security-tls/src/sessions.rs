//! The client's TLS 1.3 session tickets, kept per remote peer id, and what each dial
//! observed (a ticket offered, a certificate verified).
//!
//! rustls keys its client session store by the server name of a dial. A dial of a
//! [`SharedTlsConfigs`](crate::SharedTlsConfigs) client carries the expected peer in
//! that name ([`DialName`]), so this store files every ticket under the peer id it
//! was issued for, and hands it only to a later dial that expects the same peer id:
//! a ticket of peer A is never offered to a dial of peer B, whatever the address.
//! A dial that expects no particular peer never stores nor takes a ticket.
//!
//! Tickets live in memory only: rustls has no public encoding of a client session,
//! so they cannot outlive the process. Each ticket is taken at most once.
//!
//! rustls does not tell whether a handshake resumed, so each dial registers a probe
//! under a nonce that travels in its server name (never sent: SNI is off): the store
//! marks it when it hands out a ticket, the verifier when it verified a certificate
//! (which a resumed handshake never shows).

use libp2p_identity::{PeerId, PublicKey};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Remote peers whose tickets are kept; the least recently used one goes first.
pub const MAX_TICKET_PEERS: usize = 256;

/// Tickets kept per remote peer (a server sends some with every connection; each
/// dial takes one).
pub const MAX_TICKETS_PER_PEER: usize = 4;

/// Client certificates a listener remembers as verified in a full handshake and
/// not yet claimed by their connection.
pub(crate) const MAX_UNCLAIMED_CLIENTS: usize = 256;

/// The server name suffix that names the expected peer.
const PEER_SUFFIX: &str = ".peer.libp2p.invalid";

/// The server name of a dial that expects no particular peer.
pub(crate) const ANY_PEER: &str = "libp2p.invalid";

/// The longest DNS label we emit for the peer id (the limit is 63).
const LABEL_LEN: usize = 60;

/// What one server name says: the dial's nonce (if any) and the expected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedName {
    pub(crate) nonce: Option<u64>,
    pub(crate) peer: Option<PeerId>,
}

/// The server name for `expected`, with the dial's `nonce` as a first label
/// (`n<hex>`, which the hex labels of a peer id never look like).
pub(crate) fn server_name(nonce: Option<u64>, expected: Option<PeerId>) -> String {
    let base = match expected {
        None => ANY_PEER.to_string(),
        Some(peer) => {
            let hex = hex::encode(peer.to_bytes());
            let labels: Vec<&str> = hex
                .as_bytes()
                .chunks(LABEL_LEN)
                .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
                .collect();
            format!("{}{PEER_SUFFIX}", labels.join("."))
        }
    };
    match nonce {
        Some(nonce) => format!("n{nonce:x}.{base}"),
        None => base,
    }
}

/// Reads a name made by [`server_name`]; `None` for any other name (a verifier
/// fails closed on it).
pub(crate) fn parse_server_name(name: &str) -> Option<ParsedName> {
    let (nonce, rest) = match name.split_once('.') {
        Some((first, rest)) if first.starts_with('n') => {
            (Some(u64::from_str_radix(&first[1..], 16).ok()?), rest)
        }
        _ => (None, name),
    };
    if rest == ANY_PEER {
        return Some(ParsedName { nonce, peer: None });
    }
    let labels = rest.strip_suffix(PEER_SUFFIX)?;
    let bytes = hex::decode(labels.replace('.', "")).ok()?;
    let peer = PeerId::from_bytes(&bytes).ok()?;
    Some(ParsedName {
        nonce,
        peer: Some(peer),
    })
}

/// What one dial observed inside rustls.
#[derive(Debug, Default)]
struct Probe {
    ticket_offered: AtomicBool,
    certificate_verified: AtomicBool,
}

/// The tickets and the proven key of one remote peer.
#[derive(Debug, Default)]
struct PeerEntry {
    /// The host key a full handshake with this peer proved (tickets do not expose
    /// the certificate they were issued with, so it is remembered here).
    key: Option<PublicKey>,
    tickets: VecDeque<Tls13ClientSessionValue>,
    kx_hint: Option<NamedGroup>,
}

#[derive(Debug, Default)]
struct State {
    peers: HashMap<PeerId, PeerEntry>,
    /// Least recently used first.
    order: VecDeque<PeerId>,
}

impl State {
    /// The entry of `peer`, created if needed, marked most recently used; the least
    /// recently used peer is forgotten beyond [`MAX_TICKET_PEERS`].
    fn entry(&mut self, peer: PeerId) -> &mut PeerEntry {
        if let Some(at) = self.order.iter().position(|p| *p == peer) {
            self.order.remove(at);
        }
        self.order.push_back(peer);
        while self.order.len() > MAX_TICKET_PEERS {
            if let Some(old) = self.order.pop_front() {
                self.peers.remove(&old);
            }
        }
        self.peers.entry(peer).or_default()
    }
}

/// The session tickets of one identity's client, per remote peer id, and the
/// probes of the dials in progress.
#[derive(Debug, Default)]
pub(crate) struct PeerSessions {
    state: Mutex<State>,
    probes: Mutex<HashMap<u64, Arc<Probe>>>,
    next_nonce: AtomicU64,
}

/// Locks a mutex whose data stays consistent across a panic (single-step updates).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PeerSessions {
    /// The probe of the dial whose server name is `name`, if it registered one.
    fn probe(&self, name: &ParsedName) -> Option<Arc<Probe>> {
        lock(&self.probes).get(&name.nonce?).cloned()
    }

    /// Called by the verifier once the certificate of a dial named `name` proved
    /// `key`: remembers the key of that peer and marks the dial as a full handshake.
    pub(crate) fn certificate_verified(&self, name: &ParsedName, key: &PublicKey) {
        if let Some(probe) = self.probe(name) {
            probe.certificate_verified.store(true, Ordering::Release);
        }
        if let Some(peer) = name.peer {
            lock(&self.state).entry(peer).key = Some(key.clone());
        }
    }

    /// The key a full handshake proved for `peer`, while its entry is kept.
    pub(crate) fn key_of(&self, peer: &PeerId) -> Option<PublicKey> {
        let state = lock(&self.state);
        let entry = state.peers.get(peer)?;
        entry.key.clone()
    }

    /// How many tickets are kept for `peer`.
    pub(crate) fn tickets_of(&self, peer: &PeerId) -> usize {
        lock(&self.state)
            .peers
            .get(peer)
            .map_or(0, |e| e.tickets.len())
    }

    /// Registers a dial expecting `expected` and returns its name.
    pub(crate) fn dial_name(self: &Arc<Self>, expected: Option<PeerId>) -> DialName {
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let probe = Arc::new(Probe::default());
        lock(&self.probes).insert(nonce, probe.clone());
        DialName {
            server_name: server_name(Some(nonce), expected),
            expected,
            nonce,
            probe,
            sessions: Arc::downgrade(self),
        }
    }
}

/// The peer a name passed to the store expects, or `None` for a dial that expects
/// none or a name not made here (no ticket is stored or taken for it).
fn peer_of(server_name: &ServerName<'_>) -> Option<(ParsedName, PeerId)> {
    let ServerName::DnsName(dns) = server_name else {
        return None;
    };
    let parsed = parse_server_name(dns.as_ref())?;
    Some((parsed, parsed.peer?))
}

impl ClientSessionStore for PeerSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        if let Some((_, peer)) = peer_of(&server_name) {
            lock(&self.state).entry(peer).kx_hint = Some(group);
        }
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        let (_, peer) = peer_of(server_name)?;
        lock(&self.state).peers.get(&peer)?.kx_hint
    }

    // TLS 1.2 is never negotiated (TLS 1.3 only), so there is nothing to keep.
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let Some((_, peer)) = peer_of(&server_name) else {
            return;
        };
        let mut state = lock(&self.state);
        let tickets = &mut state.entry(peer).tickets;
        tickets.push_back(value);
        while tickets.len() > MAX_TICKETS_PER_PEER {
            tickets.pop_front();
        }
        tracing::trace!(%peer, kept = tickets.len(), "session ticket stored");
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let (parsed, peer) = peer_of(server_name)?;
        let ticket = lock(&self.state).peers.get_mut(&peer)?.tickets.pop_back()?;
        if let Some(probe) = self.probe(&parsed) {
            probe.ticket_offered.store(true, Ordering::Release);
        }
        tracing::trace!(%peer, "session ticket taken");
        Some(ticket)
    }
}

/// The server name of one dial of a [`SharedTlsConfigs`](crate::SharedTlsConfigs)
/// client (from [`SharedTlsConfigs::dial_name`](crate::SharedTlsConfigs::dial_name)),
/// and what rustls did with it: whether a ticket was offered, whether a certificate
/// was verified. Keep it until the handshake is over; dropping it ends the record.
#[derive(Debug)]
pub struct DialName {
    server_name: String,
    expected: Option<PeerId>,
    nonce: u64,
    probe: Arc<Probe>,
    sessions: std::sync::Weak<PeerSessions>,
}

impl DialName {
    /// The name to pass to rustls (or quinn) as the server name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The peer this dial expects.
    pub fn expected(&self) -> Option<PeerId> {
        self.expected
    }

    /// Whether rustls took a session ticket for this dial (it offered resumption).
    pub fn ticket_offered(&self) -> bool {
        self.probe.ticket_offered.load(Ordering::Acquire)
    }

    /// Whether the verifier checked the server's certificate for this dial: a full
    /// handshake. A finished handshake without it resumed a session.
    pub fn certificate_verified(&self) -> bool {
        self.probe.certificate_verified.load(Ordering::Acquire)
    }

    /// Whether a finished handshake of this dial resumed a session: a ticket was
    /// offered and no certificate had to be verified.
    pub fn resumed(&self) -> bool {
        self.ticket_offered() && !self.certificate_verified()
    }
}

impl Drop for DialName {
    fn drop(&mut self) {
        if let Some(sessions) = self.sessions.upgrade() {
            lock(&sessions.probes).remove(&self.nonce);
        }
    }
}

/// The client certificates a listener's verifier checked in full handshakes, each
/// waiting for its connection to claim it: a connection whose certificate nobody
/// verified resumed a session (rustls restores the certificate of the original
/// handshake and does not verify it again). quinn does not say whether a session
/// resumed, hence this record.
#[derive(Debug, Default)]
pub(crate) struct VerifiedClients {
    /// Certificates (DER), oldest first; a certificate may appear more than once.
    unclaimed: Mutex<VecDeque<Vec<u8>>>,
}

impl VerifiedClients {
    /// Records a client certificate the verifier accepted in a full handshake.
    pub(crate) fn verified(&self, certificate: &[u8]) {
        let mut unclaimed = lock(&self.unclaimed);
        unclaimed.push_back(certificate.to_vec());
        while unclaimed.len() > MAX_UNCLAIMED_CLIENTS {
            unclaimed.pop_front();
        }
    }

    /// Whether `certificate` was verified in a full handshake not claimed yet (and
    /// claims it).
    pub(crate) fn claim(&self, certificate: &[u8]) -> bool {
        let mut unclaimed = lock(&self.unclaimed);
        match unclaimed.iter().position(|c| c == certificate) {
            Some(at) => {
                unclaimed.remove(at);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p_identity::Keypair;

    #[test]
    fn names_carry_the_nonce_and_the_peer_and_are_dns_names() {
        for key in [
            Keypair::generate_ed25519(),
            Keypair::generate_secp256k1(),
            Keypair::generate_ecdsa(),
        ] {
            let peer = key.public().to_peer_id();
            for nonce in [None, Some(0), Some(u64::MAX)] {
                let name = server_name(nonce, Some(peer));
                ServerName::try_from(name.clone()).expect("a valid DNS name");
                assert_eq!(
                    parse_server_name(&name),
                    Some(ParsedName {
                        nonce,
                        peer: Some(peer)
                    })
                );
            }
        }
        let any = server_name(Some(7), None);
        assert_eq!(any, "n7.libp2p.invalid");
        assert_eq!(
            parse_server_name(&any),
            Some(ParsedName {
                nonce: Some(7),
                peer: None
            })
        );
        for bad in [
            "example.com",
            "zz.peer.libp2p.invalid",
            "00.peer.libp2p.invalid",
            "nzz.libp2p.invalid",
            "n1.example.com",
        ] {
            assert_eq!(parse_server_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_verified_client_certificate_is_claimed_once() {
        let clients = VerifiedClients::default();
        clients.verified(b"cert a");
        assert!(!clients.claim(b"cert b"));
        assert!(clients.claim(b"cert a"));
        assert!(!clients.claim(b"cert a"), "claimed already: a resumption");
        for i in 0..=MAX_UNCLAIMED_CLIENTS {
            clients.verified(format!("cert {i}").as_bytes());
        }
        assert!(!clients.claim(b"cert 0"), "the oldest was forgotten");
        assert!(clients.claim(b"cert 1"));
    }

    #[test]
    fn peers_beyond_the_limit_are_forgotten_least_recently_used_first() {
        let mut state = State::default();
        let first = PeerId::random();
        state.entry(first);
        for _ in 0..MAX_TICKET_PEERS {
            state.entry(PeerId::random());
        }
        assert_eq!(state.peers.len(), MAX_TICKET_PEERS);
        assert!(!state.peers.contains_key(&first));
    }

    #[test]
    fn a_probe_is_dropped_with_its_dial_and_keys_follow_verifications() {
        let sessions = Arc::new(PeerSessions::default());
        let key = Keypair::generate_ed25519().public();
        let peer = key.to_peer_id();
        let dial = sessions.dial_name(Some(peer));
        let parsed = parse_server_name(dial.server_name()).expect("parses");
        assert!(!dial.certificate_verified() && !dial.resumed());
        sessions.certificate_verified(&parsed, &key);
        assert!(dial.certificate_verified());
        assert_eq!(sessions.key_of(&peer), Some(key));
        assert_eq!(sessions.tickets_of(&peer), 0);
        drop(dial);
        assert!(lock(&sessions.probes).is_empty());
        // A dial that expects no peer leaves no key behind.
        let any = sessions.dial_name(None);
        let parsed = parse_server_name(any.server_name()).expect("parses");
        sessions.certificate_verified(&parsed, &Keypair::generate_ed25519().public());
        assert_eq!(lock(&sessions.state).peers.len(), 1);
    }
}
