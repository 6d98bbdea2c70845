//! Connection limits enforced end to end over TCP: the refused dial sees the error,
//! established connections are untouched, and trimming closes the expendable ones.

use std::sync::Arc;
use std::time::Duration;
use weft_connmgr::{
    ConnectionLimits, ConnectionManager, ConnectionManagerConfig, LimitError, LimitKind,
};
use weft_host::{DialError, Event, Host, Multiaddr, Protocol};

async fn listening_host(policy: Option<Arc<ConnectionManager>>) -> (Host, Multiaddr) {
    let mut b = Host::builder();
    if let Some(p) = policy {
        b = b.connection_policy(p);
    }
    let host = b.build().unwrap();
    let addrs = host
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let full = addrs[0].clone().with(Protocol::P2p(host.peer_id()));
    (host, full)
}

fn manager(limits: ConnectionLimits) -> Arc<ConnectionManager> {
    Arc::new(
        ConnectionManager::new(ConnectionManagerConfig::default().with_limits(limits)).unwrap(),
    )
}

#[tokio::test]
async fn an_outbound_limit_refuses_the_next_dial_with_a_typed_error() {
    let (a, a_addr) = listening_host(None).await;
    let (b, b_addr) = listening_host(None).await;
    let client = Host::builder()
        .connection_policy(manager(
            ConnectionLimits::default().with_max_established_outbound(1),
        ))
        .build()
        .unwrap();
    client.dial(&a_addr).await.unwrap();
    let err = client.dial(&b_addr).await.unwrap_err();
    match err {
        DialError::Limit(LimitError::Exceeded {
            kind,
            limit,
            current,
        }) => {
            assert_eq!(
                (kind, limit, current),
                (LimitKind::EstablishedOutbound, 1, 1)
            );
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
    // The established connection is untouched and still works.
    assert!(client.is_connected(&a.peer_id()));
    client.ping(a.peer_id()).await.unwrap();
    assert!(!client.is_connected(&b.peer_id()));
    for h in [client, a, b] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn an_inbound_limit_refuses_the_second_peer_and_keeps_the_first() {
    let policy = manager(ConnectionLimits::default().with_max_established_inbound(1));
    let (server, addr) = listening_host(Some(policy.clone())).await;
    let first = Host::builder().build().unwrap();
    first.dial(&addr).await.unwrap();
    first.ping(server.peer_id()).await.unwrap();

    let second = Host::builder().build().unwrap();
    let mut events = second.subscribe();
    // The handshake may complete before the server refuses; either the dial fails, or
    // the connection is closed right after and no stream can be opened on it.
    match second.dial(&addr).await {
        Err(_) => {}
        Ok(_) => {
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if let Ok(Event::Disconnected { .. }) = events.recv().await {
                        break;
                    }
                }
            })
            .await
            .expect("the refused connection must be closed");
        }
    }
    assert_eq!(server.connections().len(), 1);
    assert_eq!(server.connections()[0].peer, first.peer_id());
    first.ping(server.peer_id()).await.unwrap();
    assert_eq!(policy.stats().established_inbound, 1);
    for h in [first, second, server] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn trimming_closes_connections_down_to_the_low_watermark() {
    let config = ConnectionManagerConfig::default()
        .with_watermarks(1, 2)
        .with_grace_period(Duration::ZERO);
    let policy = Arc::new(ConnectionManager::new(config).unwrap());
    let (server, addr) = listening_host(Some(policy.clone())).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = Host::builder().build().unwrap();
        c.dial(&addr).await.unwrap();
        clients.push(c);
    }
    // The third connection crossed the high watermark: the server trims down to one.
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.connections().len() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("trimming did not bring the connections down to the low watermark");
    assert_eq!(server.connections().len(), 1);
    for c in clients {
        c.shutdown().await;
    }
    server.shutdown().await;
}
