//! AutoNAT v2 between hosts on 127.0.0.1: one client, several servers. The
//! classifier's test override takes loopback as public on the hosts that say so; an
//! address that really accepts connections is confirmed reachable, a port nobody
//! listens on unreachable, and without the override loopback is never confirmed.

#[path = "support/closed_port.rs"]
mod closed_port;

use closed_port::ClosedPort;
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::autonat::{
    AutonatClientConfig, ProbeConfig, Reachability, Reason, ServerConfig, TrackerConfig, Verdict,
    DIAL_REQUEST_PROTOCOL,
};
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::{DialConfig, Event, Host, Multiaddr, Protocol};

const WAIT: Duration = Duration::from_secs(30);

fn loopback_public() -> DialConfig {
    DialConfig::default().with_classifier(Classifier::new().with_public(&[AddrClass::Loopback]))
}

/// `n` AutoNAT servers listening on 127.0.0.1, each with its address (`/p2p/`
/// included).
async fn servers(n: usize, config: ServerConfig) -> Vec<(Host, Multiaddr)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let host = Host::builder()
            .dial_config(loopback_public())
            .autonat_server(config.clone())
            .build()
            .unwrap();
        let addrs = host
            .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .await
            .unwrap();
        let addr = addrs[0].clone().with(Protocol::P2p(host.peer_id()));
        out.push((host, addr));
    }
    out
}

fn client(dial: DialConfig, config: AutonatClientConfig) -> Host {
    Host::builder()
        .dial_config(dial)
        .autonat_client(config)
        .build()
        .unwrap()
}

/// Waits until `addr` has a verdict that `done` accepts, from the events (the
/// query method must agree).
async fn verdict_on(
    host: &Host,
    rx: &mut broadcast::Receiver<Event>,
    addr: &Multiaddr,
    done: impl Fn(&Verdict) -> bool,
) -> Verdict {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let current = host.reachability().into_iter().find(|(a, _)| a == addr);
            if let Some((_, v)) = current.filter(|(_, v)| done(v)) {
                return v;
            }
            match rx.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await;
    match found {
        Ok(v) => v,
        Err(_) => panic!(
            "no such verdict on {addr} in time; verdicts: {:?}",
            host.reachability()
        ),
    }
}

async fn connect_all(client: &Host, servers: &[(Host, Multiaddr)]) {
    for (_, addr) in servers {
        client.dial(addr).await.unwrap();
    }
}

#[tokio::test]
async fn a_dialable_address_is_confirmed_reachable_and_a_dead_port_unreachable() {
    let servers = servers(3, ServerConfig::default()).await;
    let client = client(loopback_public(), AutonatClientConfig::default());
    let mut rx = client.subscribe();
    let listen = client
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()
        .remove(0);
    let closed = ClosedPort::bind();
    let dead = closed.addr();
    client.add_external_addr(dead.clone());
    connect_all(&client, &servers).await;

    let v = verdict_on(&client, &mut rx, &listen, Verdict::is_confirmed).await;
    assert_eq!(v.reachability, Reachability::Reachable, "{v}");
    assert_eq!((v.successes, v.failures), (3, 0), "{v}");
    let v = verdict_on(&client, &mut rx, &dead, Verdict::is_confirmed).await;
    assert_eq!(v.reachability, Reachability::Unreachable, "{v}");
    assert_eq!((v.successes, v.failures), (0, 3), "{v}");
    // Asked to, the client probes again (and the verdict stands).
    let mut watch = client.subscribe();
    client.reprobe_reachability();
    let reprobed = tokio::time::timeout(WAIT, async {
        loop {
            match watch.recv().await {
                Ok(Event::OpenedStream { protocol, .. }) if protocol == DIAL_REQUEST_PROTOCOL => {
                    return
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await;
    assert!(reprobed.is_ok(), "no probe after reprobe_reachability");
    for (s, _) in &servers {
        s.shutdown().await;
    }
    client.shutdown().await;
}

#[tokio::test]
async fn loopback_is_never_confirmed_without_the_override() {
    let servers = servers(3, ServerConfig::default()).await;
    // The client's classifier is the real internet's: 127.0.0.1 is loopback.
    let client = client(DialConfig::default(), AutonatClientConfig::default());
    let mut rx = client.subscribe();
    let mut watch = client.subscribe();
    let listen = client
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()
        .remove(0);
    connect_all(&client, &servers).await;
    let v = verdict_on(&client, &mut rx, &listen, |_| true).await;
    assert_eq!(
        (v.reachability, v.reason),
        (Reachability::Unknown, Reason::NotPublic)
    );
    // Once every server is identified, and a few ticks of the client's loop later,
    // no probe has gone out and the verdict stands.
    let mut identified = 0;
    let mut probes = 0;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.recv().await {
                Ok(Event::PeerIdentified { .. }) => identified += 1,
                Ok(Event::OpenedStream { protocol, .. }) if protocol == DIAL_REQUEST_PROTOCOL => {
                    probes += 1
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert_eq!(identified, 3);
    assert_eq!(probes, 0, "a loopback address was probed");
    let (_, v) = client
        .reachability()
        .into_iter()
        .find(|(a, _)| *a == listen)
        .unwrap();
    assert_eq!(
        (v.reachability, v.reason),
        (Reachability::Unknown, Reason::NotPublic)
    );
    client.shutdown().await;
}

#[tokio::test]
async fn two_agreeing_servers_are_not_enough() {
    let servers = servers(2, ServerConfig::default()).await;
    let client = client(loopback_public(), AutonatClientConfig::default());
    let mut rx = client.subscribe();
    let listen = client
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()
        .remove(0);
    connect_all(&client, &servers).await;
    let v = verdict_on(&client, &mut rx, &listen, |v| {
        v.reason == Reason::NoServers && v.successes == 2
    })
    .await;
    assert_eq!(v.reachability, Reachability::Unknown, "{v}");
    // A third server settles it.
    let third = self::servers(1, ServerConfig::default()).await;
    connect_all(&client, &third).await;
    let v = verdict_on(&client, &mut rx, &listen, Verdict::is_confirmed).await;
    assert_eq!(
        (v.reachability, v.successes),
        (Reachability::Reachable, 3),
        "{v}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn another_ip_than_the_clients_costs_dial_data_that_a_stingy_client_refuses() {
    // The servers ask 200 000 bytes before dialing an IP that is not the one the
    // request came from; the client pays at most 100 000.
    let servers = servers(3, ServerConfig::default().with_dial_data(200_000..=200_000)).await;
    let probe = ProbeConfig::default().with_max_dial_data(100_000);
    let config = AutonatClientConfig::default()
        .with_probe(probe)
        .with_tracker(TrackerConfig::default());
    let client = client(loopback_public(), config);
    let mut rx = client.subscribe();
    // Listening on every interface, so 127.0.0.2 accepts too.
    let listen = client
        .listen(&"/ip4/0.0.0.0/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let port = listen
        .iter()
        .find_map(|a| match a.iter().nth(1) {
            Some(Protocol::Tcp(p)) => Some(p),
            _ => None,
        })
        .unwrap();
    let same_ip: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let other_ip: Multiaddr = format!("/ip4/127.0.0.2/tcp/{port}").parse().unwrap();
    client.add_external_addr(other_ip.clone());
    connect_all(&client, &servers).await;
    let v = verdict_on(&client, &mut rx, &same_ip, Verdict::is_confirmed).await;
    assert_eq!(v.reachability, Reachability::Reachable, "{v}");
    // Its probes (run beside those of the first address) end with every server
    // refused for it, having learnt nothing.
    let v = verdict_on(&client, &mut rx, &other_ip, |v| {
        v.reason == Reason::NoServers
    })
    .await;
    assert_eq!((v.successes, v.failures), (0, 0), "never dialed: {v}");
    client.shutdown().await;

    // A client that pays gets 127.0.0.2 confirmed too.
    let paying = AutonatClientConfig::default()
        .with_probe(ProbeConfig::default().with_max_dial_data(200_000));
    let client = self::client(loopback_public(), paying);
    let mut rx = client.subscribe();
    let listen = client
        .listen(&"/ip4/0.0.0.0/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let port = listen
        .iter()
        .find_map(|a| match a.iter().nth(1) {
            Some(Protocol::Tcp(p)) => Some(p),
            _ => None,
        })
        .unwrap();
    let other_ip: Multiaddr = format!("/ip4/127.0.0.2/tcp/{port}").parse().unwrap();
    client.add_external_addr(other_ip.clone());
    connect_all(&client, &servers).await;
    let v = verdict_on(&client, &mut rx, &other_ip, Verdict::is_confirmed).await;
    assert_eq!(v.reachability, Reachability::Reachable, "{v}");
    client.shutdown().await;
}

#[cfg(feature = "quic")]
#[tokio::test]
async fn a_quic_address_is_dialed_back_over_quic() {
    let servers = servers(3, ServerConfig::default()).await;
    let client = client(loopback_public(), AutonatClientConfig::default());
    let mut rx = client.subscribe();
    let quic = client
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .await
        .unwrap()
        .remove(0);
    connect_all(&client, &servers).await;
    let v = verdict_on(&client, &mut rx, &quic, Verdict::is_confirmed).await;
    assert_eq!(v.reachability, Reachability::Reachable, "{v}");
    assert_eq!(v.successes, 3, "{v}");
    client.shutdown().await;
}

#[tokio::test]
async fn a_dial_back_with_a_nonce_no_probe_waits_for_is_refused() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let client = client(loopback_public(), AutonatClientConfig::default());
    let addr = client
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()
        .remove(0)
        .with(Protocol::P2p(client.peer_id()));
    let stranger = Host::builder().build().unwrap();
    stranger.dial(&addr).await.unwrap();
    let mut s = stranger
        .new_stream(client.peer_id(), &[weft_host::autonat::DIAL_BACK_PROTOCOL])
        .await
        .unwrap();
    // A DialBack message: length 9, field 1 (fixed64), a nonce nobody sent.
    let mut frame = vec![9u8, 0x09];
    frame.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    s.write_all(&frame).await.unwrap();
    s.flush().await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .expect("the client answered in time");
    assert!(
        read.is_err() || answer.is_empty(),
        "acknowledged: {answer:?}"
    );
    stranger.shutdown().await;
    client.shutdown().await;
}
