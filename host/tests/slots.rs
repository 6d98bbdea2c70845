//! Inbound stream slots over real TCP: a stream over its per-peer slot is refused with
//! `na` during multistream-select (the dialer's lazy proposal fails with
//! `ConnectionRefused`), never accepted and then reset; other peers keep their own
//! slots. Covers ping (4 per peer: the spec says 2, but rust-libp2p keeps one per
//! connection), identify push, perf and the default per-peer limit of user handlers.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::io::ErrorKind;
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::{
    Direction, Event, HandlerOptions, Host, Multiaddr, PeerId, Protocol, Stream,
    DEFAULT_MAX_INBOUND_STREAMS_PER_PEER,
};

const WAIT: Duration = Duration::from_secs(10);

async fn server() -> (Host, Multiaddr) {
    let host = Host::builder().build().unwrap();
    let addr = host
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(Protocol::P2p(host.peer_id()));
    (host, addr)
}

async fn client_of(addr: &Multiaddr) -> Host {
    let client = Host::builder().build().unwrap();
    client.dial(addr).await.unwrap();
    client
}

/// Waits until the server admitted (opened) one inbound stream of `protocol`.
async fn admitted(events: &mut broadcast::Receiver<Event>, protocol: &str) {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::OpenedStream {
                    direction: Direction::Inbound,
                    protocol: p,
                    ..
                }) if p == protocol => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("the server did not admit the stream in time")
}

/// Opens a stream of `protocol` and writes `first` (so the lazy proposal leaves).
async fn open(client: &Host, peer: PeerId, protocol: &str, first: &[u8]) -> Stream {
    let mut s = client.new_stream(peer, &[protocol]).await.unwrap();
    s.write_all(first).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// The stream was refused with `na`: its first read fails with `ConnectionRefused`.
async fn assert_refused(mut s: Stream) {
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("no answer to the proposal in time");
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "not a refusal: {e}"),
        Ok(n) => panic!("the stream over the slot was accepted ({n} bytes read)"),
    }
}

/// Holds `slots` streams of `protocol` open from `client`, then checks that one more
/// is refused with `na` while another peer still gets one.
async fn over_the_slot_gets_na(
    protocol: &str,
    slots: usize,
    first: &[u8],
    server: &Host,
    addr: &Multiaddr,
) {
    let mut events = server.subscribe();
    let client = client_of(addr).await;
    let mut held = Vec::new();
    for _ in 0..slots {
        held.push(open(&client, server.peer_id(), protocol, first).await);
        admitted(&mut events, protocol).await;
    }
    assert_refused(open(&client, server.peer_id(), protocol, first).await).await;
    // Another peer has slots of its own.
    let other = client_of(addr).await;
    let _theirs = open(&other, server.peer_id(), protocol, first).await;
    admitted(&mut events, protocol).await;
    // A slot given back is usable again.
    drop(held.pop());
    let again = tokio::time::timeout(WAIT, async {
        loop {
            let s = open(&client, server.peer_id(), protocol, first).await;
            // The server may not have seen the drop yet: retry until admitted.
            let mut probe = server.subscribe();
            let ok =
                tokio::time::timeout(Duration::from_millis(500), admitted(&mut probe, protocol))
                    .await;
            if ok.is_ok() {
                return s;
            }
        }
    })
    .await;
    assert!(again.is_ok(), "the released slot was never given out again");
    other.shutdown().await;
    client.shutdown().await;
}

#[tokio::test]
async fn ping_admits_four_streams_per_peer_and_refuses_the_fifth_with_na() {
    let (server, addr) = server().await;
    let client = client_of(&addr).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = open(
            &client,
            server.peer_id(),
            weft_host::ping::PROTOCOL,
            &[7u8; 32],
        )
        .await;
        let mut echo = [0u8; 32];
        tokio::time::timeout(WAIT, s.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, [7u8; 32]);
        held.push(s);
    }
    assert_refused(
        open(
            &client,
            server.peer_id(),
            weft_host::ping::PROTOCOL,
            &[7u8; 32],
        )
        .await,
    )
    .await;
    client.shutdown().await;
    over_the_slot_gets_na(weft_host::ping::PROTOCOL, 4, &[1u8; 32], &server, &addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn identify_push_slots_are_per_peer() {
    let (server, addr) = server().await;
    // A length prefix of 16 and no body: the server waits for the rest.
    over_the_slot_gets_na(weft_host::identify::PUSH_PROTOCOL, 2, &[16], &server, &addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn perf_slots_are_per_peer() {
    let (server, addr) = server().await;
    server.enable_perf();
    // Half of the 8-byte request: the server waits for the rest.
    over_the_slot_gets_na(weft_host::perf::PROTOCOL, 2, &[0u8; 4], &server, &addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn user_handlers_get_a_default_per_peer_limit() {
    let (server, addr) = server().await;
    // Holds the stream until the remote closes or drops it.
    server.set_handler("/hold/1.0.0", |mut s| async move {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    over_the_slot_gets_na(
        "/hold/1.0.0",
        DEFAULT_MAX_INBOUND_STREAMS_PER_PEER,
        b"x",
        &server,
        &addr,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_host_wide_limit_refuses_with_na_too() {
    let (server, addr) = server().await;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    server.set_handler_with(
        "/one/1.0.0",
        HandlerOptions::default().with_max_inbound_streams(1),
        move |mut s| {
            let mut release = release_rx.clone();
            async move {
                let _ = release.wait_for(|r| *r).await;
                let _ = s.close().await;
            }
        },
    );
    let mut events = server.subscribe();
    let a = client_of(&addr).await;
    let b = client_of(&addr).await;
    let _held = open(&a, server.peer_id(), "/one/1.0.0", b"x").await;
    admitted(&mut events, "/one/1.0.0").await;
    assert_refused(open(&b, server.peer_id(), "/one/1.0.0", b"x").await).await;
    release_tx.send(true).unwrap();
    for h in [a, b, server] {
        h.shutdown().await;
    }
}
