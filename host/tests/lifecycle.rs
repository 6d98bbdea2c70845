//! Connection lifecycle over real TCP: idle connections are closed, and trimming
//! runs on a timer.

use std::sync::Arc;
use std::time::Duration;
use weft_host::{Host, Multiaddr};

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
