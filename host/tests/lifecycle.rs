//! Connection lifecycle over real TCP: idle connections are closed, trimming runs on
//! a timer, a failed inbound upgrade is an event, one connection can be closed, and
//! stream events follow negotiation (a lazy stream opens when the answer arrives, a
//! refused one neither opens nor closes).

use futures::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::{Direction, Event, HandlerOptions, Host, HostConfig, Multiaddr, UpgradeStep};

async fn listening(
    config: weft_host::HostConfig,
    policy: Option<Arc<weft_connmgr::ConnectionManager>>,
) -> (Host, Multiaddr) {
    let mut builder = Host::builder().config(config);
    if let Some(p) = policy {
        builder = builder.connection_policy(p);
    }
    let host = builder.build().unwrap();
    let addr = host
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(weft_host::Protocol::P2p(host.peer_id()));
    (host, addr)
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let r = tokio::time::timeout(within, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "{what} did not happen within {within:?}");
}

#[tokio::test]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let config = weft_host::HostConfig::default()
        .with_idle_timeout(Some(Duration::from_millis(400)))
        .with_maintenance_interval(Duration::from_millis(50));
    let (server, addr) = listening(config, None).await;
    server.set_handler("/hold/1.0.0", |mut s| async move {
        let mut sink = Vec::new();
        let _ = futures::AsyncReadExt::read_to_end(&mut s, &mut sink).await;
    });
    // The clients keep the default idle timeout (120 s): only the server closes.
    let idle = Host::builder().build().unwrap();
    idle.dial(&addr).await.unwrap();
    let busy = Host::builder().build().unwrap();
    busy.dial(&addr).await.unwrap();
    let mut held = busy
        .new_stream(server.peer_id(), &["/hold/1.0.0"])
        .await
        .unwrap();
    futures::AsyncWriteExt::write_all(&mut held, b"x")
        .await
        .unwrap();
    futures::AsyncWriteExt::flush(&mut held).await.unwrap();
    wait_until(
        "closing the idle connection",
        Duration::from_secs(10),
        || !idle.is_connected(&server.peer_id()),
    )
    .await;
    // Well past the idle timeout, the connection with an open stream is still there.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(busy.is_connected(&server.peer_id()));
    assert_eq!(server.connections().len(), 1);
    // Once its stream is gone it is idle too.
    drop(held);
    wait_until(
        "closing the connection whose stream ended",
        Duration::from_secs(10),
        || server.connections().is_empty(),
    )
    .await;
    for h in [idle, busy, server] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn the_timer_trims_back_under_the_high_watermark_after_the_grace_period() {
    let grace = Duration::from_secs(3);
    let manager = Arc::new(
        weft_connmgr::ConnectionManager::new(
            weft_connmgr::ConnectionManagerConfig::default()
                .with_watermarks(1, 2)
                .with_grace_period(grace),
        )
        .unwrap(),
    );
    let config =
        weft_host::HostConfig::default().with_maintenance_interval(Duration::from_millis(100));
    let (server, addr) = listening(config, Some(manager.clone())).await;
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = Host::builder().build().unwrap();
        c.dial(&addr).await.unwrap();
        clients.push(c);
    }
    wait_until("three connections", Duration::from_secs(5), || {
        server.connections().len() == 3
    })
    .await;
    // Over the high watermark, but every connection is in its grace period: kept.
    if started.elapsed() < grace / 2 {
        assert_eq!(server.connections().len(), 3);
    }
    // No new connection arrives: the timer alone trims once the grace period is over,
    // at least back to the high watermark (the connections leave their grace period
    // one by one, and trimming stops once the count is no longer above it).
    let trimmed = tokio::time::timeout(Duration::from_secs(15), async {
        while server.connections().len() > 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        trimmed.is_ok(),
        "not trimmed: {:?}, {:?}",
        server.connections(),
        manager.stats()
    );
    assert!(
        started.elapsed() >= grace,
        "trimmed inside the grace period"
    );
    for c in clients {
        c.shutdown().await;
    }
    server.shutdown().await;
}

/// The next event that `f` picks, within 10 s.
async fn next_matching(rx: &mut broadcast::Receiver<Event>, f: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(e) if f(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("the event did not arrive in time")
}

/// The stream events of `protocol` received so far, without waiting.
fn stream_events(rx: &mut broadcast::Receiver<Event>, protocol: &str) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => match &e {
                Event::OpenedStream { protocol: p, .. }
                | Event::ClosedStream { protocol: p, .. }
                    if p == protocol =>
                {
                    out.push(e)
                }
                _ => {}
            },
            Err(broadcast::error::TryRecvError::Lagged(n)) => panic!("{n} events missed"),
            Err(_) => return out,
        }
    }
}

const ECHO: &str = "/echo/1.0.0";

fn serve_echo(host: &Host, options: HandlerOptions) {
    host.set_handler_with(ECHO, options, |mut s| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = s.close().await;
    });
}

#[tokio::test]
async fn a_failed_inbound_upgrade_is_an_event_with_the_remote_address_and_the_step() {
    let (server, addr) = listening(HostConfig::default(), None).await;
    let mut events = server.subscribe();
    let port = addr
        .iter()
        .find_map(|p| match p {
            weft_host::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    // Not multistream-select: the security negotiation fails at once.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let ours = raw.local_addr().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"\x13GET / HTTP/1.1\r\n\r\n\n")
        .await
        .unwrap();
    let Event::InboundUpgradeFailed {
        remote_addr,
        local_addr,
        step,
        reason,
    } = next_matching(&mut events, |e| {
        matches!(e, Event::InboundUpgradeFailed { .. })
    })
    .await
    else {
        unreachable!()
    };
    let expected: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", ours.port())
        .parse()
        .unwrap();
    assert_eq!(remote_addr, expected);
    assert_eq!(
        local_addr,
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    );
    assert_eq!(step, Some(UpgradeStep::NegotiateSecurity), "{reason}");
    assert!(!reason.is_empty());
    assert!(server.connections().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn close_ends_one_connection_and_leaves_the_others() {
    let (server, addr) = listening(HostConfig::default(), None).await;
    let client = Host::builder().build().unwrap();
    // Without the /p2p/ suffix every dial is a connection of its own.
    let bare: Multiaddr = addr
        .iter()
        .filter(|p| !matches!(p, weft_host::Protocol::P2p(_)))
        .collect();
    let first = client.dial(&bare).await.unwrap();
    let second = client.dial(&bare).await.unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(client.connections_to(&server.peer_id()).len(), 2);
    let mut events = client.subscribe();
    assert!(client.close(first.id).await);
    let Event::Disconnected { connection, .. } =
        next_matching(&mut events, |e| matches!(e, Event::Disconnected { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(connection, first.id);
    let left: Vec<_> = client
        .connections_to(&server.peer_id())
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, [second.id]);
    assert!(client.is_connected(&server.peer_id()));
    wait_until(
        "the server seeing one connection",
        Duration::from_secs(10),
        || server.connections().len() == 1,
    )
    .await;
    assert!(!client.close(first.id).await, "already closed");
    for h in [client, server] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_lazy_stream_is_opened_when_the_remote_answers() {
    let (server, addr) = listening(HostConfig::default(), None).await;
    serve_echo(&server, HandlerOptions::default());
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    let mut events = client.subscribe();
    // One protocol: a lazy proposal that leaves with the first write.
    let mut s = client.new_stream(server.peer_id(), &[ECHO]).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    s.flush().await.unwrap();
    // The proposal is out and the answer may be on its way, but nobody read it yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stream_events(&mut events, ECHO), []);
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    let opened = stream_events(&mut events, ECHO);
    assert!(
        matches!(
            opened.as_slice(),
            [Event::OpenedStream { direction: Direction::Outbound, peer, .. }] if *peer == server.peer_id()
        ),
        "{opened:?}"
    );
    drop(s);
    let closed = stream_events(&mut events, ECHO);
    assert!(
        matches!(closed.as_slice(), [Event::ClosedStream { .. }]),
        "{closed:?}"
    );
    for h in [client, server] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_stream_refused_by_its_slot_opens_and_closes_nothing() {
    let (server, addr) = listening(HostConfig::default(), None).await;
    serve_echo(
        &server,
        HandlerOptions::default().with_max_inbound_streams_per_peer(Some(1)),
    );
    let mut server_events = server.subscribe();
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    let mut events = client.subscribe();
    let mut held = client.new_stream(server.peer_id(), &[ECHO]).await.unwrap();
    held.write_all(b"a").await.unwrap();
    let mut one = [0u8; 1];
    held.read_exact(&mut one).await.unwrap();
    // The slot is taken: the next stream gets `na`.
    let mut refused = client.new_stream(server.peer_id(), &[ECHO]).await.unwrap();
    refused.write_all(b"b").await.unwrap();
    let err = refused.read(&mut one).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    drop(refused);
    let seen = stream_events(&mut events, ECHO);
    assert!(
        matches!(seen.as_slice(), [Event::OpenedStream { .. }]),
        "only the held stream opened, nothing closed: {seen:?}"
    );
    let served = stream_events(&mut server_events, ECHO);
    assert!(
        matches!(
            served.as_slice(),
            [Event::OpenedStream {
                direction: Direction::Inbound,
                ..
            }]
        ),
        "{served:?}"
    );
    drop(held);
    for h in [client, server] {
        h.shutdown().await;
    }
}
