//! Our addresses as others learn them, over real TCP on 127.0.0.1: an accepted
//! external address is advertised by identify (and pushed), withdrawing it replaces
//! what the peer stored, with port reuse (the default) every peer observes our
//! listen port, so their observations can agree, and agreeing observers make a
//! candidate external address.

use std::time::Duration;
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::dial::DialConfig;
use weft_host::{Event, Host, HostConfig, Multiaddr, PeerId, Protocol, RecvError};

fn tcp_on(ip: &str) -> Multiaddr {
    format!("/ip4/{ip}/tcp/0").parse().unwrap()
}

/// A host listening on 127.0.0.`i` (an observer of its own address), and that address.
async fn observer_on(i: u8) -> (Host, Multiaddr) {
    let observer = Host::builder().build().unwrap();
    let at = observer
        .listen(&tcp_on(&format!("127.0.0.{i}")))
        .await
        .unwrap()[0]
        .clone();
    (observer, at)
}

/// The first event that `pick` takes, within 10 s.
async fn first<T>(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    pick: impl Fn(Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => panic!("the event channel closed"),
            }
        }
    })
    .await;
    found.expect("the event arrived within 10 s")
}

/// Waits until `peer`'s stored addresses satisfy `f`.
async fn wait_for_addrs(host: &Host, peer: &PeerId, f: impl Fn(&[Multiaddr]) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let addrs = host.peerstore().addrs(peer).unwrap();
            if f(&addrs) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "addresses of {peer} never matched: {:?}",
        host.peerstore().addrs(peer)
    );
}

#[tokio::test]
async fn an_external_address_is_advertised_pushed_and_withdrawn() {
    let server = Host::builder().build().unwrap();
    let listened = server.listen(&tcp_on("127.0.0.1")).await.unwrap();
    let client = Host::builder().build().unwrap();
    let mut events = client.subscribe();
    client
        .dial(&listened[0].clone().with(Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    let identified = first(&mut events, |e| match e {
        Event::PeerIdentified { listen_addrs, .. } => Some(listen_addrs),
        _ => None,
    })
    .await;
    assert_eq!(identified, listened);

    let external: Multiaddr = "/ip4/203.0.113.5/tcp/4001".parse().unwrap();
    assert!(server.add_external_addr(external.clone()));
    assert!(!server.add_external_addr(external.clone()), "accepted once");
    assert_eq!(server.external_addrs(), std::slice::from_ref(&external));
    // Identify push tells the connected client; it keeps the address (a peer on
    // this machine: no scope to filter by).
    let sid = server.peer_id();
    wait_for_addrs(&client, &sid, |a| a.contains(&external)).await;

    assert!(server.remove_external_addr(&external));
    assert!(!server.remove_external_addr(&external));
    // The next push lists the listen address only, and replaces what was stored.
    wait_for_addrs(&client, &sid, |a| !a.contains(&external)).await;
    let stored = client.peerstore().addrs(&sid).unwrap();
    assert!(stored.contains(&listened[0]), "{stored:?}");

    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn with_port_reuse_every_peer_observes_our_listen_port() {
    // Four observers on distinct loopback addresses; we dial each of them.
    let us = Host::builder().build().unwrap();
    let ours = us.listen(&tcp_on("127.0.0.1")).await.unwrap()[0].clone();
    let mut seen = Vec::new();
    for i in 2..=5 {
        let (observer, at) = observer_on(i).await;
        let mut events = observer.subscribe();
        us.dial(&at.with(Protocol::P2p(observer.peer_id())))
            .await
            .unwrap();
        let observed = first(&mut events, |e| match e {
            Event::Connected { remote_addr, .. } => Some(remote_addr),
            _ => None,
        })
        .await;
        seen.push(observed);
        observer.shutdown().await;
    }
    assert!(
        seen.iter().all(|a| *a == ours),
        "the observers saw {seen:?}, we listen on {ours}"
    );
    us.shutdown().await;
}

#[tokio::test]
async fn four_agreeing_observers_make_a_candidate_external_address() {
    // Loopback taken as the internet, so that observations of it count.
    let us = Host::builder()
        .dial_config(
            DialConfig::default()
                .with_classifier(Classifier::new().with_public(&[AddrClass::Loopback])),
        )
        .config(HostConfig::default().with_observed_addr_threshold(4))
        .build()
        .unwrap();
    let mut events = us.subscribe();
    let ours = us.listen(&tcp_on("127.0.0.1")).await.unwrap()[0].clone();
    let mut observers = Vec::new();
    for i in 2..=5 {
        let (observer, at) = observer_on(i).await;
        us.dial(&at.with(Protocol::P2p(observer.peer_id())))
            .await
            .unwrap();
        observers.push(observer);
    }
    // While we listen on it, the address the observers agree on is no candidate.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !std::iter::from_fn(|| events.try_recv().ok())
            .any(|e| matches!(e, Event::ExternalAddrCandidate { .. })),
        "a listen address was offered as a candidate"
    );
    // Stop listening (the connections stay); the observers' next identify push
    // (a new handler) tells us again where they see us.
    assert!(us.close_listener(&ours));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for observer in &observers {
        observer.set_handler("/new/1.0.0", |_s| async {});
    }
    let candidate = first(&mut events, |e| match e {
        Event::ExternalAddrCandidate { addr, observers } => Some((addr, observers)),
        _ => None,
    })
    .await;
    assert_eq!(candidate, (ours.clone(), 4));
    assert!(us.add_external_addr(ours.clone()));
    assert_eq!(us.external_addrs(), [ours]);
    for observer in observers {
        observer.shutdown().await;
    }
    us.shutdown().await;
}
