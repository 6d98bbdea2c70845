//! TCP simultaneous open: both ends of one socket pair upgrade as dialers with the
//! opt-in `/libp2p/simultaneous-connect` negotiation. Exactly one must end as the
//! initiator, 50 times in a row, and both must then open streams.

#[path = "upgrade_support.rs"]
mod support;

use libp2p_identity::Keypair;
use support::{boxed, echo_many, serve_echo, tcp_pair, upgrader, Sec};
use weft_upgrader::Role;

async fn fifty_simultaneous_opens(sec: Sec) {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (ua, ub) = (upgrader(sec, &a, true, true), upgrader(sec, &b, true, true));
    let mut a_won = 0;
    for round in 0..50 {
        let (x, y) = tcp_pair().await;
        let (at_a, at_b) = tokio::join!(
            ua.upgrade_simultaneous_open(boxed(x), Some(b.public().to_peer_id())),
            ub.upgrade_simultaneous_open(boxed(y), Some(a.public().to_peer_id()))
        );
        let at_a = at_a.unwrap_or_else(|e| panic!("round {round}, a: {e}"));
        let at_b = at_b.unwrap_or_else(|e| panic!("round {round}, b: {e}"));
        assert_eq!(
            at_a.role,
            at_b.role.opposite(),
            "round {round}: exactly one initiator"
        );
        assert_eq!(at_a.remote_peer, b.public().to_peer_id());
        assert_eq!(at_b.remote_peer, a.public().to_peer_id());
        assert!(at_a.muxer_inlined && at_b.muxer_inlined);
        if at_a.role == Role::Initiator {
            a_won += 1;
        }
        let drivers = [tokio::spawn(at_a.driver), tokio::spawn(at_b.driver)];
        let echoes = [
            serve_echo(at_a.muxed.clone()),
            serve_echo(at_b.muxed.clone()),
        ];
        tokio::join!(echo_many(&at_a.muxed, 5, 10), echo_many(&at_b.muxed, 5, 20));
        at_a.muxed.close().await.unwrap();
        for task in echoes {
            task.abort();
        }
        for driver in drivers {
            let _ = driver.await;
        }
    }
    // A fair draw: all 50 won by one side has probability 2^-49.
    assert!((1..50).contains(&a_won), "a won {a_won} of 50 draws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_simultaneous_open_50_times() {
    fifty_simultaneous_opens(Sec::Noise).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_simultaneous_open_50_times() {
    fifty_simultaneous_opens(Sec::Tls).await;
}

/// A simultaneous-open dialer meeting a plain listener ends as the initiator.
#[tokio::test]
async fn simultaneous_open_against_a_plain_listener() {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (ua, ub) = (
        upgrader(Sec::Noise, &a, true, true),
        upgrader(Sec::Noise, &b, true, true),
    );
    let (x, y) = tcp_pair().await;
    let (at_a, at_b) = tokio::join!(
        ua.upgrade_simultaneous_open(boxed(x), None),
        ub.upgrade_inbound(boxed(y))
    );
    let (at_a, at_b) = (at_a.unwrap(), at_b.unwrap());
    assert_eq!((at_a.role, at_b.role), (Role::Initiator, Role::Responder));
    tokio::spawn(at_a.driver);
    tokio::spawn(at_b.driver);
    let _echo = serve_echo(at_b.muxed.clone());
    echo_many(&at_a.muxed, 10, 30).await;
}
