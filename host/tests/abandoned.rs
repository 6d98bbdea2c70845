//! Abandoned dials over real TCP are cancelled and leave nothing behind. Alone in its
//! test binary: it counts the process's open fds.

use futures::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use weft_host::{Host, Multiaddr, PeerId};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
}

/// A "tarpit": accepts TCP connections and never answers; each socket is held until
/// the dialer closes it.
async fn tarpit() -> (Multiaddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_abandoned_dials_leave_no_fds_and_no_pending_permits() {
    let (tarpit_addr, tarpit_task) = tarpit().await;
    let manager = Arc::new(weft_host::default_connection_manager().unwrap());
    let client = Host::builder()
        .connection_policy(manager.clone())
        .build()
        .unwrap();
    let before = open_fds();
    let mut abandoned = 0usize;
    for batch in 0..100u64 {
        // Abandoned at different steps: before the connect, during the upgrade; one
        // peer in three shared by three callers who all give up.
        let after = Duration::from_millis(batch % 4 * 10);
        let client = &client;
        let dials = (0..60).flat_map(|i| {
            let addr = tarpit_addr
                .clone()
                .with(weft_host::Protocol::P2p(PeerId::random()));
            let callers = if i % 3 == 0 { 3 } else { 1 };
            let client = client.clone();
            (0..callers).map(move |_| {
                let (client, addr) = (client.clone(), addr.clone());
                async move { tokio::time::timeout(after, client.dial(&addr)).await }
            })
        });
        let dials: Vec<_> = dials.collect();
        abandoned += dials.len();
        for r in join_all(dials).await {
            assert!(r.is_err(), "a dial to the tarpit cannot succeed");
        }
    }
    assert!(abandoned >= 10_000, "{abandoned} dials");
    assert_eq!(
        client.dials_in_progress(),
        0,
        "abandoned dials are still tracked"
    );
    assert_eq!(
        manager.stats().pending_outbound,
        0,
        "pending permits leaked"
    );
    // The tarpit sees each close and drops its side too.
    let settled = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if open_fds() <= before + 8 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "{} fds open, {before} before the dials",
        open_fds()
    );
    client.shutdown().await;
    tarpit_task.abort();
}
