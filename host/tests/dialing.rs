//! Dialing details over real TCP: scheduled attempts over several addresses (the next
//! one early after a failure), backoff, undialable addresses, dialing without a peer
//! id, a dial merged with an inbound connection, listen address checks, a subscriber
//! that never reads, and IPv6. (Inbound stream limits
//! are in `slots.rs`.)

#[path = "support/closed_port.rs"]
mod closed_port;

use closed_port::ClosedPort;
use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};
use weft_host::{
    DialError, DialOpts, Event, Host, HostConfig, ListenError, Multiaddr, PeerId, Protocol,
};

fn tcp() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

/// A "tarpit" on 127.0.0.1: accepts TCP connections and never says a word. Its
/// address, and the task holding the accepted sockets (abort it to close them).
async fn tarpit() -> (Multiaddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!(
        "/ip4/127.0.0.1/tcp/{}",
        listener.local_addr().unwrap().port()
    )
    .parse()
    .unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, held)
}

#[tokio::test]
async fn a_stalled_address_does_not_hold_up_a_good_one() {
    let (tarpit_addr, held) = tarpit().await;
    let server = Host::builder().build().unwrap();
    let good = server.listen(&tcp()).await.unwrap()[0].clone();
    let client = Host::builder().build().unwrap();
    // The tarpit is tried first; the good address starts one stagger later and wins.
    client
        .peerstore()
        .add_addrs(&server.peer_id(), &[tarpit_addr], Duration::from_secs(60))
        .unwrap();
    let started = Instant::now();
    client
        .peerstore()
        .add_addrs(
            &server.peer_id(),
            std::slice::from_ref(&good),
            Duration::from_secs(60),
        )
        .unwrap();
    let info = client.dial_peer(server.peer_id()).await.unwrap();
    assert_eq!(info.remote_addr, good);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    client.shutdown().await;
    server.shutdown().await;
    held.abort();
}

#[tokio::test]
async fn a_per_address_timeout_ends_a_stalled_dial() {
    let (tarpit_addr, held) = tarpit().await;
    let config = HostConfig::default().with_dial_timeout_per_address(Duration::from_millis(500));
    let client = Host::builder().config(config).build().unwrap();
    let addr = tarpit_addr.with(Protocol::P2p(PeerId::random()));
    let started = Instant::now();
    let err = client.dial(&addr).await.unwrap_err();
    assert!(
        matches!(err, weft_host::DialError::Timeout { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    client.shutdown().await;
    held.abort();
}

#[tokio::test]
async fn listening_checks_the_p2p_suffix() {
    let host = Host::builder().build().unwrap();
    let other: Multiaddr = format!("/ip4/127.0.0.1/tcp/0/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    assert!(matches!(
        host.listen(&other).await,
        Err(ListenError::WrongPeerId(_))
    ));
    let mine = tcp().with(Protocol::P2p(host.peer_id()));
    assert_eq!(host.listen(&mine).await.unwrap().len(), 1);
    let unsupported: Multiaddr = "/ip4/127.0.0.1/udp/0/webrtc-direct".parse().unwrap();
    assert!(matches!(
        host.listen(&unsupported).await,
        Err(ListenError::Unsupported(_))
    ));
    host.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_stall_the_host() {
    let server = Host::builder().build().unwrap();
    let mut never_read = server.subscribe();
    let addr = server.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    // Far more events than the channel holds.
    for _ in 0..700 {
        client.ping(server.peer_id()).await.unwrap();
    }
    assert!(matches!(
        never_read.recv().await,
        Err(weft_host::RecvError::Lagged(_))
    ));
    // And it can catch up with what comes next.
    assert!(never_read.recv().await.is_ok());
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn ipv6_loopback_works_where_available() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let server = Host::builder().build().unwrap();
    let addrs = server
        .listen(&"/ip6/::1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    assert!(matches!(addrs[0].iter().next(), Some(Protocol::Ip6(_))));
    let client = Host::builder().build().unwrap();
    let mut events = client.subscribe();
    client
        .dial(&addrs[0].clone().with(Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    loop {
        if let Ok(Event::Connected { remote_addr, .. }) = events.recv().await {
            assert!(matches!(remote_addr.iter().next(), Some(Protocol::Ip6(_))));
            break;
        }
    }
    client.ping(server.peer_id()).await.unwrap();
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_gets_at_most_four_ping_streams_at_once() {
    let server = Host::builder().build().unwrap();
    let addr = server.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    // One per connection, as rust-libp2p keeps them: a relayed and two direct
    // connections after a hole punch, and one more.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = client
            .new_stream(server.peer_id(), &["/ipfs/ping/1.0.0"])
            .await
            .unwrap();
        weft_host::ping::ping_once(&mut s).await.unwrap();
        open.push(s);
    }
    // All stay open; a fifth concurrent ping stream is reset by the listener.
    let mut fifth = client
        .new_stream(server.peer_id(), &["/ipfs/ping/1.0.0"])
        .await
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        weft_host::ping::ping_once(&mut fifth),
    )
    .await
    .unwrap();
    assert!(r.is_err(), "a fifth ping stream was served");
    // Closing one frees a slot.
    let mut first = open.remove(0);
    first.close().await.unwrap();
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = client
        .new_stream(server.peer_id(), &["/ipfs/ping/1.0.0"])
        .await
        .unwrap();
    weft_host::ping::ping_once(&mut fourth).await.unwrap();
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_address_starts_the_next_at_once() {
    let server = Host::builder().build().unwrap();
    let good = server.listen(&tcp()).await.unwrap()[0].clone();
    // A connection attempt delay far longer than the test may take: the good address
    // can only start early because the dead one failed.
    let config = HostConfig::default().with_dial_stagger(Duration::from_secs(5));
    let client = Host::builder().config(config).build().unwrap();
    let closed = ClosedPort::bind();
    let dead = closed.addr();
    // Same group (IPv4 loopback): the given order holds, the dead one goes first.
    client
        .peerstore()
        .add_addrs(
            &server.peer_id(),
            &[dead.clone(), good.clone()],
            Duration::from_secs(60),
        )
        .unwrap();
    let started = Instant::now();
    let info = client.dial_peer(server.peer_id()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(info.remote_addr, good);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_failing_peer_is_backed_off_and_the_failure_reported_per_address() {
    let client = Host::builder().build().unwrap();
    let mut events = client.subscribe();
    let peer = PeerId::random();
    let closed = ClosedPort::bind();
    let dead = closed.addr();
    let webrtc: Multiaddr = "/ip4/127.0.0.1/udp/1/webrtc-direct".parse().unwrap();
    client
        .peerstore()
        .add_addrs(
            &peer,
            &[dead.clone(), webrtc.clone()],
            Duration::from_secs(60),
        )
        .unwrap();
    let err = client.dial_peer(peer).await.unwrap_err();
    let DialError::AllFailed(errors) = &err else {
        panic!("{err:?}")
    };
    let by_addr: Vec<(&Multiaddr, &DialError)> = errors.iter().map(|(a, e)| (a, e)).collect();
    assert!(
        by_addr
            .iter()
            .any(|(a, e)| **a == webrtc && matches!(e, DialError::Rejected { .. })),
        "{err}"
    );
    assert!(
        by_addr
            .iter()
            .any(|(a, e)| **a == dead && matches!(e, DialError::Transport { .. })),
        "{err}"
    );
    // One event for the dial, with the reason of each address.
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::DialFailed {
                peer: p, errors, ..
            }) = events.recv().await
            {
                break (p, errors);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(event.0, Some(peer));
    assert_eq!(event.1.len(), 2, "{:?}", event.1);
    assert!(
        event
            .1
            .iter()
            .any(|(a, why)| *a == dead && why.contains("refused")),
        "{:?}",
        event.1
    );

    // At once again: refused without an attempt, with the time left (about 1 s).
    match client.dial_peer(peer).await {
        Err(DialError::Backoff { peer: p, remaining }) => {
            assert_eq!(p, Some(peer));
            assert!(
                remaining > Duration::ZERO && remaining <= Duration::from_millis(1250),
                "{remaining:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Forced: dialed again (and refused by the closed port again).
    let forced = client
        .dial_peer_with(peer, DialOpts::new().with_ignore_backoff(true))
        .await
        .unwrap_err();
    assert!(matches!(forced, DialError::AllFailed(_)), "{forced:?}");
    client.shutdown().await;
}

#[tokio::test]
async fn undialable_addresses_are_out_before_any_delay() {
    let config = HostConfig::default().with_dial_stagger(Duration::from_secs(10));
    let client = Host::builder().config(config).build().unwrap();
    let peer = PeerId::random();
    let addrs: Vec<Multiaddr> = [
        // QUIC draft-29 (`/quic`): no transport of ours speaks it.
        "/ip4/127.0.0.1/udp/1/quic",
        "/ip4/127.0.0.1/udp/1/webrtc-direct",
        "/ip6/::1/udp/1/quic-v1/webtransport",
        "/ip4/0.0.0.0/tcp/1",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    client
        .peerstore()
        .add_addrs(&peer, &addrs, Duration::from_secs(60))
        .unwrap();
    let started = Instant::now();
    let err = client.dial_peer(peer).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    let DialError::AllFailed(errors) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(errors.len(), 4, "{err}");
    assert!(errors
        .iter()
        .all(|(_, e)| matches!(e, DialError::Rejected { .. })));
    // Nothing was attempted, so nothing is backed off: the next dial is no
    // `Backoff` either.
    let again = client.dial_peer(peer).await.unwrap_err();
    assert!(matches!(again, DialError::AllFailed(_)), "{again:?}");
    client.shutdown().await;
}

#[tokio::test]
async fn dialing_without_a_peer_id_learns_it_from_the_handshake() {
    let server = Host::builder().build().unwrap();
    let addr = server.listen(&tcp()).await.unwrap()[0].clone();
    let client = Host::builder().build().unwrap();
    let info = client.dial(&addr).await.unwrap();
    assert_eq!(info.peer, server.peer_id());
    assert!(client.is_connected(&server.peer_id()));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_inbound_connection_that_lands_first_ends_the_dial() {
    // The client dials the server at a tarpit (accepts, never answers), with a long
    // per-address timeout; meanwhile the server dials the client.
    let (tarpit_addr, held) = tarpit().await;
    let server = Host::builder().build().unwrap();
    let client = Host::builder().build().unwrap();
    let client_addr = client.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(client.peer_id()));
    let to_tarpit = tarpit_addr.with(Protocol::P2p(server.peer_id()));
    let started = Instant::now();
    let dial = tokio::spawn({
        let client = client.clone();
        async move { client.dial(&to_tarpit).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.dial(&client_addr).await.unwrap();
    let info = tokio::time::timeout(Duration::from_secs(5), dial)
        .await
        .expect("the dial ended with the inbound connection")
        .unwrap()
        .unwrap();
    assert_eq!(info.peer, server.peer_id());
    assert_eq!(info.direction, weft_host::Direction::Inbound);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(client.dials_in_progress(), 0);
    client.shutdown().await;
    server.shutdown().await;
    held.abort();
}

#[tokio::test]
async fn a_listener_on_0_0_0_0_reports_interface_addresses_and_is_dialed_at_its_loopback() {
    let server = Host::builder().build().unwrap();
    let any: Multiaddr = "/ip4/0.0.0.0/tcp/0".parse().unwrap();
    let reported = server.listen(&any).await.unwrap();
    let unspecified =
        |a: &Multiaddr| matches!(a.iter().next(), Some(Protocol::Ip4(ip)) if ip.is_unspecified());
    assert!(!reported.iter().any(unspecified), "{reported:?}");
    assert_eq!(server.listen_addrs(), reported);
    // Tests dial only loopback: its entry among the interface addresses.
    let loopback = reported
        .iter()
        .find(|a| matches!(a.iter().next(), Some(Protocol::Ip4(ip)) if ip.is_loopback()))
        .expect("the loopback interface's address is reported")
        .clone();
    let client = Host::builder().build().unwrap();
    let info = client.dial(&loopback).await.unwrap();
    assert_eq!(info.peer, server.peer_id());
    // The listener is closed by the address it was opened with, too.
    let bound: Multiaddr = loopback
        .iter()
        .map(|p| match p {
            Protocol::Ip4(_) => Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED),
            other => other,
        })
        .collect();
    assert!(server.close_listener(&bound));
    client.shutdown().await;
    server.shutdown().await;
}
