//! Dialing details over real TCP: staggered attempts over several addresses, listen
//! address checks, a subscriber that never reads, and IPv6. (Inbound stream limits
//! are in `slots.rs`.)

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};
use weft_host::{Event, Host, HostConfig, ListenError, Multiaddr, PeerId, Protocol};

fn tcp() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

#[tokio::test]
async fn a_stalled_address_does_not_hold_up_a_good_one() {
    // A "tarpit": accepts TCP connections and never says a word.
    let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tarpit_addr: Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{}", tarpit.local_addr().unwrap().port())
            .parse()
            .unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = tarpit.accept().await {
            held.push(s);
        }
    });
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
    let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tarpit.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = tarpit.accept().await {
            held.push(s);
        }
    });
    let config = HostConfig::default().with_dial_timeout_per_address(Duration::from_millis(500));
    let client = Host::builder().config(config).build().unwrap();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
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
    let unsupported: Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap();
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
async fn a_peer_gets_at_most_two_ping_streams_at_once() {
    let server = Host::builder().build().unwrap();
    let addr = server.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = client
            .new_stream(server.peer_id(), &["/ipfs/ping/1.0.0"])
            .await
            .unwrap();
        weft_host::ping::ping_once(&mut s).await.unwrap();
        open.push(s);
    }
    // Both stay open; a third concurrent ping stream is reset by the listener.
    let mut third = client
        .new_stream(server.peer_id(), &["/ipfs/ping/1.0.0"])
        .await
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        weft_host::ping::ping_once(&mut third),
    )
    .await
    .unwrap();
    assert!(r.is_err(), "a third ping stream was served");
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
