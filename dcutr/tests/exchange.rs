//! Both sides' exchanges against each other over an in-memory pipe, and against
//! peers that misbehave.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use multiaddr::Multiaddr;
use std::time::Duration;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use weft_dcutr::{
    codec, initiate, proto::HolePunch, respond, respond_with, Config, ExchangeError, Failure,
    Initiator,
};

fn pipe() -> (
    Compat<tokio::io::DuplexStream>,
    Compat<tokio::io::DuplexStream>,
) {
    let (x, y) = tokio::io::duplex(64 * 1024);
    (x.compat(), y.compat())
}

fn a(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn an_exchange_hands_each_side_the_others_addresses() {
    let (mut b_io, mut a_io) = pipe();
    let b_addrs = vec![
        a("/ip4/198.51.100.1/tcp/4001"),
        a("/ip4/198.51.100.1/udp/4001/quic-v1"),
    ];
    let a_addrs = vec![a("/ip4/203.0.113.2/tcp/5001")];
    let a_peer = libp2p_identity::PeerId::random();
    let b_peer = libp2p_identity::PeerId::random();
    let responder = {
        let a_addrs = a_addrs.clone();
        tokio::spawn(
            async move { respond(&mut a_io, &Config::default(), Some(b_peer), &a_addrs).await },
        )
    };
    let mut machine = Initiator::new(Config::default(), Some(a_peer), std::time::Instant::now());
    let plan = initiate(&mut b_io, &mut machine, &b_addrs).await.unwrap();
    assert_eq!(plan.attempt, 1);
    assert_eq!(plan.remote, a_addrs);
    assert!(plan.punch_at >= std::time::Instant::now() - plan.rtt);
    let (remote, received) = responder.await.unwrap().unwrap();
    assert_eq!(remote, b_addrs);
    assert_eq!(received, 2);
}

#[tokio::test]
async fn the_responder_hears_of_the_peers_addresses_before_it_answers() {
    let (mut b_io, mut a_io) = pipe();
    let b_addrs = vec![a("/ip4/198.51.100.1/tcp/4001")];
    let b_peer = libp2p_identity::PeerId::random();
    // Plays B by hand: sends CONNECT, and checks the callback ran before A's
    // CONNECT came back.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let responder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            respond_with(
                &mut a_io,
                &Config::default(),
                Some(b_peer),
                &[a("/ip4/203.0.113.2/tcp/5001")],
                |remote| seen.lock().unwrap().extend_from_slice(remote),
            )
            .await
        })
    };
    let connect = HolePunch::connect(b_addrs.iter().map(|m| m.to_vec()).collect());
    codec::write_message(&mut b_io, &connect).await.unwrap();
    let answer = codec::read_message(&mut b_io).await.unwrap();
    assert_eq!(answer.obs_addrs.len(), 1);
    assert_eq!(*seen.lock().unwrap(), b_addrs, "called before the answer");
    codec::write_message(&mut b_io, &HolePunch::sync())
        .await
        .unwrap();
    let (remote, _) = responder.await.unwrap().unwrap();
    assert_eq!(remote, b_addrs);
}

#[tokio::test]
async fn a_silent_peer_times_out_each_side() {
    let config = Config::default().with_exchange_timeout(Duration::from_millis(100));
    let (mut b_io, _a_io) = pipe();
    let mut machine = Initiator::new(config.clone(), None, std::time::Instant::now());
    let r = initiate(&mut b_io, &mut machine, &[a("/ip4/198.51.100.1/tcp/1")]).await;
    assert_eq!(
        r,
        Err(Failure::Exchange {
            attempt: 1,
            error: ExchangeError::Timeout(Duration::from_millis(100))
        })
    );
    let (mut a_io, _b_io) = pipe();
    let r = respond(&mut a_io, &config, None, &[]).await;
    assert_eq!(r, Err(ExchangeError::Timeout(Duration::from_millis(100))));
}

#[tokio::test]
async fn an_oversized_or_out_of_turn_message_is_refused() {
    // The initiator announces a 64 KiB message: refused from its prefix.
    let (mut b_io, mut a_io) = pipe();
    b_io.write_all(&[0x80, 0x80, 0x04]).await.unwrap();
    let r = respond(&mut a_io, &Config::default(), None, &[]).await;
    assert!(matches!(r, Err(ExchangeError::TooLarge(_))), "{r:?}");

    // A SYNC before any CONNECT.
    let (mut b_io, mut a_io) = pipe();
    codec::write_message(&mut b_io, &HolePunch::sync())
        .await
        .unwrap();
    let r = respond(&mut a_io, &Config::default(), None, &[]).await;
    assert!(matches!(r, Err(ExchangeError::Unexpected { .. })), "{r:?}");

    // A responder that answers with SYNC.
    let (mut b_io, mut a_io) = pipe();
    let fake = tokio::spawn(async move {
        let _ = codec::read_message(&mut a_io).await;
        codec::write_message(&mut a_io, &HolePunch::sync())
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = a_io.read_to_end(&mut rest).await;
    });
    let mut machine = Initiator::new(Config::default(), None, std::time::Instant::now());
    let r = initiate(&mut b_io, &mut machine, &[a("/ip4/198.51.100.1/tcp/1")]).await;
    assert!(
        matches!(
            r,
            Err(Failure::Exchange {
                attempt: 1,
                error: ExchangeError::Unexpected { .. }
            })
        ),
        "{r:?}"
    );
    drop(b_io);
    fake.await.unwrap();

    // A responder that hangs up.
    let (mut b_io, a_io) = pipe();
    drop(a_io);
    let mut machine = Initiator::new(Config::default(), None, std::time::Instant::now());
    let r = initiate(&mut b_io, &mut machine, &[a("/ip4/198.51.100.1/tcp/1")]).await;
    assert!(matches!(r, Err(Failure::Exchange { .. })), "{r:?}");
}
