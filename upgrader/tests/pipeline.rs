//! The upgrade pipeline over real TCP on 127.0.0.1, with the test-only plaintext
//! security and single-stream muxer: negotiation, roles, errors by step, timeouts,
//! simultaneous open.

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::sync::Arc;
use std::time::Duration;
use support::plaintext::Plaintext;
use support::single_stream::SingleStream;
use support::tcp_pair;
use weft_upgrader::{
    Budget, Connection, NegotiationError, Role, SecurityError, UpgradeError, UpgradeStep, Upgrader,
};

const PLAINTEXT: &str = "/plaintext/2.0.0";
const SINGLE: &str = "/weft-test/single-stream/1.0.0";

struct Node {
    keypair: Keypair,
}

impl Node {
    fn new() -> Self {
        Node {
            keypair: Keypair::generate_ed25519(),
        }
    }

    fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// An upgrader with plaintext under each of `security` ids and a single-stream
    /// muxer under each of `muxers` ids.
    fn upgrader(&self, security: &[&str], muxers: &[&str], lazy: bool) -> Upgrader {
        let mut builder = Upgrader::builder()
            .lazy(lazy)
            .timeout(Duration::from_secs(5));
        for id in security {
            builder = builder.security(Arc::new(Plaintext::with_id(self.keypair.clone(), id)));
        }
        for id in muxers {
            builder = builder.muxer(Arc::new(SingleStream::with_id(id)));
        }
        builder.build().unwrap()
    }
}

/// Sends a message from the initiator's stream to the responder's and one back.
async fn exchange(initiator: Connection, responder: Connection) {
    tokio::spawn(initiator.driver);
    tokio::spawn(responder.driver);
    let mut out = initiator.muxed.open_stream().await.unwrap();
    let mut inc = responder.muxed.accept_stream().await.unwrap();
    out.write_all(b"ping").await.unwrap();
    out.flush().await.unwrap();
    let mut buf = [0u8; 4];
    inc.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    inc.write_all(b"pong").await.unwrap();
    inc.flush().await.unwrap();
    out.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn upgrade_reports_peers_roles_and_protocols() {
    for lazy in [true, false] {
        let (a, b) = (Node::new(), Node::new());
        let (dialer, listener) = (
            a.upgrader(&[PLAINTEXT], &[SINGLE], lazy),
            b.upgrader(&[PLAINTEXT], &[SINGLE], lazy),
        );
        let (dialed, accepted) = tcp_pair().await;
        let (out, inc) = tokio::join!(
            dialer.upgrade_outbound(dialed, Some(b.peer_id())),
            listener.upgrade_inbound(accepted)
        );
        let (out, inc) = (out.unwrap(), inc.unwrap());
        assert_eq!(out.remote_peer, b.peer_id());
        assert_eq!(out.remote_public_key, b.keypair.public());
        assert_eq!(inc.remote_peer, a.peer_id());
        assert_eq!(out.role, Role::Initiator);
        assert_eq!(inc.role, Role::Responder);
        for c in [&out, &inc] {
            assert_eq!(c.security_protocol, PLAINTEXT);
            assert_eq!(c.muxer_protocol, SINGLE);
            assert!(!c.muxer_inlined, "plaintext cannot inline a muxer");
        }
        let debug = format!("{out:?}");
        assert!(
            debug.contains(PLAINTEXT) && debug.contains("Initiator"),
            "{debug}"
        );
        exchange(out, inc).await;
    }
}

#[tokio::test]
async fn dialer_preference_order_and_fallback_after_na() {
    let (a, b) = (Node::new(), Node::new());
    // The dialer prefers protocols the listener lacks: each is refused with `na`.
    let dialer = a.upgrader(
        &["/weft-test/unknown-security/1", PLAINTEXT],
        &["/weft-test/unknown-muxer/1", SINGLE],
        true,
    );
    let listener = b.upgrader(&["/weft-test/other/1", PLAINTEXT], &[SINGLE], true);
    let (dialed, accepted) = tcp_pair().await;
    let (out, inc) = tokio::join!(
        dialer.upgrade_outbound(dialed, None),
        listener.upgrade_inbound(accepted)
    );
    let (out, inc) = (out.unwrap(), inc.unwrap());
    assert_eq!(out.security_protocol, PLAINTEXT);
    assert_eq!(inc.security_protocol, PLAINTEXT);
    assert_eq!(out.muxer_protocol, SINGLE);
    assert_eq!(inc.muxer_protocol, SINGLE);
    exchange(out, inc).await;

    // With both lists sharing their first entry, that one wins.
    let dialer = a.upgrader(&["/weft-test/first/1", PLAINTEXT], &[SINGLE], true);
    let listener = b.upgrader(&[PLAINTEXT, "/weft-test/first/1"], &[SINGLE], true);
    let (dialed, accepted) = tcp_pair().await;
    let (out, inc) = tokio::join!(
        dialer.upgrade_outbound(dialed, None),
        listener.upgrade_inbound(accepted)
    );
    assert_eq!(out.unwrap().security_protocol, "/weft-test/first/1");
    assert_eq!(inc.unwrap().security_protocol, "/weft-test/first/1");
}

#[tokio::test]
async fn no_common_security_fails_security_negotiation() {
    let (a, b) = (Node::new(), Node::new());
    let dialer = a.upgrader(&["/weft-test/a/1", "/weft-test/b/1"], &[SINGLE], true);
    let listener = b.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let (dialed, accepted) = tcp_pair().await;
    let (out, inc) = tokio::join!(
        dialer.upgrade_outbound(dialed, None),
        listener.upgrade_inbound(accepted)
    );
    match out.unwrap_err() {
        UpgradeError::NegotiateSecurity(NegotiationError::NoProtocolAccepted { tried }) => {
            assert_eq!(tried, ["/weft-test/a/1", "/weft-test/b/1"]);
        }
        other => panic!("unexpected dialer error {other:?}"),
    }
    let inc = inc.unwrap_err();
    assert_eq!(inc.step(), Some(UpgradeStep::NegotiateSecurity), "{inc:?}");
}

/// A lazy single proposal that the listener refuses surfaces during the handshake;
/// the error must still name the security negotiation.
#[tokio::test]
async fn refused_lazy_proposal_is_a_negotiation_error() {
    let (a, b) = (Node::new(), Node::new());
    let dialer = a.upgrader(&["/weft-test/unknown/1"], &[SINGLE], true);
    let listener = b.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let (dialed, accepted) = tcp_pair().await;
    let (out, _inc) = tokio::join!(
        dialer.upgrade_outbound(dialed, None),
        listener.upgrade_inbound(accepted)
    );
    match out.unwrap_err() {
        UpgradeError::NegotiateSecurity(NegotiationError::NoProtocolAccepted { tried }) => {
            assert_eq!(tried, ["/weft-test/unknown/1"]);
        }
        other => panic!("unexpected dialer error {other:?}"),
    }
}

#[tokio::test]
async fn no_common_muxer_fails_muxer_negotiation() {
    let (a, b) = (Node::new(), Node::new());
    // Not lazy: with a lazy single muxer the refusal would only show on first use.
    let dialer = a.upgrader(&[PLAINTEXT], &["/weft-test/muxer-a/1"], false);
    let listener = b.upgrader(&[PLAINTEXT], &["/weft-test/muxer-b/1"], false);
    let (dialed, accepted) = tcp_pair().await;
    let (out, inc) = tokio::join!(
        dialer.upgrade_outbound(dialed, None),
        listener.upgrade_inbound(accepted)
    );
    assert!(
        matches!(
            out.unwrap_err(),
            UpgradeError::NegotiateMuxer(NegotiationError::NoProtocolAccepted { .. })
        ),
        "dialer"
    );
    let inc = inc.unwrap_err();
    assert_eq!(inc.step(), Some(UpgradeStep::NegotiateMuxer), "{inc:?}");
}

#[tokio::test]
async fn wrong_expected_peer_fails_the_handshake() {
    let (a, b) = (Node::new(), Node::new());
    let someone_else = Keypair::generate_ed25519().public().to_peer_id();
    let dialer = a.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let listener = b.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let (dialed, accepted) = tcp_pair().await;
    let (out, _inc) = tokio::join!(
        dialer.upgrade_outbound(dialed, Some(someone_else)),
        listener.upgrade_inbound(accepted)
    );
    match out.unwrap_err() {
        UpgradeError::Handshake {
            protocol,
            source: SecurityError::PeerIdMismatch { expected, actual },
        } => {
            assert_eq!(protocol, PLAINTEXT);
            assert_eq!(expected, someone_else);
            assert_eq!(actual, b.peer_id());
        }
        other => panic!("unexpected error {other:?}"),
    }
}

/// DCUtR style: the side that dialed plays the responder, and the responder checks
/// the peer it expects too.
#[tokio::test]
async fn forced_roles_and_expected_peer_on_the_responder() {
    let (a, b) = (Node::new(), Node::new());
    let ua = a.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let ub = b.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let (dialed, accepted) = tcp_pair().await;
    let (at_dialer, at_listener) = tokio::join!(
        ua.upgrade(dialed, Role::Responder, Some(b.peer_id())),
        ub.upgrade(accepted, Role::Initiator, Some(a.peer_id()))
    );
    let (at_dialer, at_listener) = (at_dialer.unwrap(), at_listener.unwrap());
    assert_eq!(at_dialer.role, Role::Responder);
    assert_eq!(at_listener.role, Role::Initiator);
    assert_eq!(at_dialer.remote_peer, b.peer_id());
    exchange(at_listener, at_dialer).await;

    let someone_else = Keypair::generate_ed25519().public().to_peer_id();
    let (dialed, accepted) = tcp_pair().await;
    let (at_dialer, _) = tokio::join!(
        ua.upgrade(dialed, Role::Responder, Some(someone_else)),
        ub.upgrade(accepted, Role::Initiator, None)
    );
    assert!(matches!(
        at_dialer.unwrap_err(),
        UpgradeError::Handshake {
            source: SecurityError::PeerIdMismatch { .. },
            ..
        }
    ));
}

/// A silent remote: the overall timeout fires and names the step in progress.
#[tokio::test]
async fn timeout_names_the_step() {
    let a = Node::new();
    for (lazy, step) in [
        (false, UpgradeStep::NegotiateSecurity),
        // Lazy: the proposal leaves with the handshake, which then waits.
        (true, UpgradeStep::Handshake),
    ] {
        let upgrader = Upgrader::builder()
            .security(Arc::new(Plaintext::new(a.keypair.clone())))
            .muxer(Arc::new(SingleStream::new()))
            .lazy(lazy)
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let (dialed, _silent) = tcp_pair().await;
        match upgrader.upgrade_outbound(dialed, None).await.unwrap_err() {
            UpgradeError::Timeout { step: got, after } => {
                assert_eq!(got, step, "lazy {lazy}");
                assert_eq!(after, Duration::from_millis(300));
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
    // The listener side times out in the security negotiation.
    let upgrader = Upgrader::builder()
        .security(Arc::new(Plaintext::new(a.keypair.clone())))
        .muxer(Arc::new(SingleStream::new()))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let (_silent, accepted) = tcp_pair().await;
    let err = upgrader.upgrade_inbound(accepted).await.unwrap_err();
    assert!(matches!(
        err,
        UpgradeError::Timeout {
            step: UpgradeStep::NegotiateSecurity,
            ..
        }
    ));
}

#[test]
fn build_rejects_incomplete_or_ambiguous_configuration() {
    let keypair = Keypair::generate_ed25519();
    let err = Upgrader::builder()
        .muxer(Arc::new(SingleStream::new()))
        .build()
        .unwrap_err();
    assert!(matches!(err, UpgradeError::NoSecurity));
    let err = Upgrader::builder()
        .security(Arc::new(Plaintext::new(keypair.clone())))
        .build()
        .unwrap_err();
    assert!(matches!(err, UpgradeError::NoMuxer));
    let err = Upgrader::builder()
        .security(Arc::new(Plaintext::new(keypair.clone())))
        .security(Arc::new(Plaintext::new(keypair)))
        .muxer(Arc::new(SingleStream::new()))
        .build()
        .unwrap_err();
    assert!(matches!(err, UpgradeError::DuplicateProtocol(id) if id == PLAINTEXT));
}

#[tokio::test]
async fn simultaneous_open_picks_exactly_one_initiator() {
    let (a, b) = (Node::new(), Node::new());
    let ua = a.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let ub = b.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let mut initiators_a = 0;
    for _ in 0..20 {
        let (x, y) = tcp_pair().await;
        let (at_a, at_b) = tokio::join!(
            ua.upgrade_simultaneous_open(x, Some(b.peer_id())),
            ub.upgrade_simultaneous_open(y, Some(a.peer_id()))
        );
        let (at_a, at_b) = (at_a.unwrap(), at_b.unwrap());
        assert_eq!(at_a.role, at_b.role.opposite(), "exactly one initiator");
        assert_eq!(at_a.remote_peer, b.peer_id());
        assert_eq!(at_b.remote_peer, a.peer_id());
        if at_a.role == Role::Initiator {
            initiators_a += 1;
            exchange(at_a, at_b).await;
        } else {
            exchange(at_b, at_a).await;
        }
    }
    // 20 fair draws all won by one side: probability 2^-19.
    assert!((1..20).contains(&initiators_a), "{initiators_a} of 20");

    // Against a plain listener, simultaneous open ends as the initiator.
    let (x, y) = tcp_pair().await;
    let (at_a, at_b) = tokio::join!(ua.upgrade_simultaneous_open(x, None), ub.upgrade_inbound(y));
    assert_eq!(at_a.unwrap().role, Role::Initiator);
    assert_eq!(at_b.unwrap().role, Role::Responder);
}

/// A hole punch's responder whose SYN reached the remote's listener: the remote
/// waits as a listener, so after the silence we initiate; a remote that initiates is
/// heard at once and answered (its first bytes replayed to the negotiation), a
/// remote that closes is an error, not a hang.
#[tokio::test]
async fn responding_unless_silent_leads_a_silent_listener_and_answers_an_initiator() {
    let (a, b) = (Node::new(), Node::new());
    let ua = a.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let ub = b.upgrader(&[PLAINTEXT], &[SINGLE], true);
    let silence = Duration::from_millis(200);

    let (x, y) = tcp_pair().await;
    let started = std::time::Instant::now();
    let (at_a, at_b) = tokio::join!(
        ua.upgrade_responding_unless_silent(x, silence, Some(b.peer_id()), Budget::unlimited()),
        ub.upgrade_inbound(y)
    );
    let (at_a, at_b) = (at_a.unwrap(), at_b.unwrap());
    assert!(started.elapsed() >= silence, "led only after the silence");
    assert_eq!(at_a.role, Role::Initiator);
    assert_eq!(at_b.role, Role::Responder);
    assert_eq!(at_a.remote_peer, b.peer_id());
    exchange(at_a, at_b).await;

    let (x, y) = tcp_pair().await;
    let (at_a, at_b) = tokio::join!(
        ua.upgrade_responding_unless_silent(x, silence, Some(b.peer_id()), Budget::unlimited()),
        ub.upgrade_outbound(y, Some(a.peer_id()))
    );
    let (at_a, at_b) = (at_a.unwrap(), at_b.unwrap());
    assert_eq!(at_a.role, Role::Responder);
    assert_eq!(at_b.role, Role::Initiator);
    exchange(at_b, at_a).await;

    let (x, y) = tcp_pair().await;
    drop(y);
    let closed = ua
        .upgrade_responding_unless_silent(x, silence, None, Budget::unlimited())
        .await;
    assert!(
        matches!(closed, Err(UpgradeError::NegotiateSecurity(_))),
        "{closed:?}"
    );
}

#[test]
fn upgrade_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let keypair = Keypair::generate_ed25519();
    let upgrader = Upgrader::builder()
        .security(Arc::new(Plaintext::new(keypair)))
        .muxer(Arc::new(SingleStream::new()))
        .build()
        .unwrap();
    let io = || -> weft_upgrader::BoxedIo { Box::new(futures::io::Cursor::new(Vec::new())) };
    assert_send(&upgrader.upgrade_outbound(io(), None));
    assert_send(&upgrader.upgrade_inbound(io()));
    assert_send(&upgrader.upgrade(io(), Role::Responder, None));
    assert_send(&upgrader.upgrade_simultaneous_open(io(), None));
}
