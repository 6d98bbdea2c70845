//! Keep-alive over real TCP through a relay on 127.0.0.1: a live but idle link stays
//! up (the pings are answered, their answers never confuse yamux), and a link that
//! stops passing bytes without closing is noticed by both ends, every stream failing
//! with the reason.

mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};
use support::*;
use weft_muxer_yamux::{KeepAlive, Yamux, YamuxConfig};
use weft_upgrader::{Budget, Role};

fn quick() -> YamuxConfig {
    YamuxConfig::default().with_keep_alive(Some(KeepAlive {
        idle: Duration::from_millis(200),
        timeout: Duration::from_millis(300),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_live_link_stays_up_across_many_keep_alive_pings() {
    let (a, b, _relay) = relayed_pair(Duration::from_millis(5)).await;
    let yamux = Yamux::with_config(quick()).unwrap();
    let (client, client_driver) = weft_peer_with(&yamux, a, Role::Initiator, Budget::unlimited());
    let (server, server_driver) = weft_peer_with(&yamux, b, Role::Responder, Budget::unlimited());
    spawn_echo_server(server);
    // Ten idle periods: ten pings each way, all answered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!client_driver.is_finished() && !server_driver.is_finished());
    let stream = within(5, "opening", client.open_stream()).await.unwrap();
    let echoed = within(5, "echo", echo_roundtrip(stream, b"still here"))
        .await
        .unwrap();
    assert_eq!(echoed, b"still here");
    assert_eq!(yamux.stats().keep_alive_failures(), 0);
}

/// Runs a transfer through a relay, stops the relay in the middle, and returns how
/// long each end took to notice and the errors the client's writer, the server's
/// reader and both drivers ended with.
async fn dead_link(config: YamuxConfig) -> (Duration, Vec<String>) {
    let (a, b, relay) = relayed_pair(Duration::from_millis(5)).await;
    let yamux = Yamux::with_config(config).unwrap();
    let (client, client_driver) = weft_peer_with(&yamux, a, Role::Initiator, Budget::unlimited());
    let (server, server_driver) = weft_peer_with(&yamux, b, Role::Responder, Budget::unlimited());
    let mut out = within(5, "opening", client.open_stream()).await.unwrap();
    out.write_all(b"hello").await.unwrap();
    out.flush().await.unwrap();
    let mut inbound = within(5, "accepting", server.accept_stream())
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        loop {
            if let Err(e) = out.write_all(&chunk).await {
                return e.to_string();
            }
        }
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match inbound.read(&mut buf).await {
                Ok(0) => return "clean EOF".to_owned(),
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.stop();
    let stopped = Instant::now();
    let deadline = Duration::from_secs(40);
    let client_end = within(40, "the client noticing", client_driver)
        .await
        .unwrap();
    let server_end = within(40, "the server noticing", server_driver)
        .await
        .unwrap();
    let noticed = stopped.elapsed();
    assert!(noticed < deadline);
    let writer = within(5, "the writer failing", writer).await.unwrap();
    let reader = within(5, "the reader failing", reader).await.unwrap();
    let errors = vec![
        client_end
            .expect_err("the client's connection must fail")
            .to_string(),
        server_end
            .expect_err("the server's connection must fail")
            .to_string(),
        writer,
        reader,
    ];
    assert_eq!(yamux.stats().keep_alive_failures(), 2);
    (noticed, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_fails_both_ends_and_every_stream_with_the_reason() {
    let (noticed, errors) = dead_link(quick()).await;
    for error in &errors {
        assert!(
            error.contains("keep-alive: no answer from the remote within 300 ms"),
            "{error}"
        );
    }
    assert!(noticed >= Duration::from_millis(300), "{noticed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_notices_a_dead_link_within_30_seconds() {
    let (noticed, errors) = dead_link(YamuxConfig::default()).await;
    assert!(noticed < Duration::from_secs(30), "{noticed:?}");
    for error in &errors {
        assert!(
            error.contains("keep-alive: no answer from the remote within 15 s"),
            "{error}"
        );
    }
}
