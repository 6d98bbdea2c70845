//! Receive flow control over real TCP: what a sender may write before the reader
//! reads (the spec's window, whatever the config), window growth earned by reading
//! through a delaying relay, the memory budget (held bytes charged and given back,
//! the largest holder shed when it is full, denied growth), with weft and with
//! rust-libp2p's yamux as the sender, and a peer that overruns its credit failing
//! the connection.

mod support;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io::ErrorKind;
use std::time::Duration;
use support::libp2p_peer::Libp2pPeer;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use weft_muxer_yamux::{Yamux, YamuxConfig, STREAM_WINDOW};
use weft_upgrader::test_suite::CountingBudget;
use weft_upgrader::{Budget, Role};

fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(|i| (i % 251) as u8).collect()
}

/// Writes the pattern until the stream accepts nothing for 500 ms; returns how much
/// it accepted. The reader never reads meanwhile, so that is the sender's credit.
async fn write_until_blocked<W: AsyncWrite + Unpin>(stream: &mut W) -> usize {
    let mut sent = 0;
    loop {
        let chunk = pattern(sent, 64 * 1024);
        match tokio::time::timeout(Duration::from_millis(500), stream.write(&chunk)).await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => panic!("write failed after {sent} bytes: {e}"),
            Err(_) => return sent,
        }
    }
}

/// Reads exactly `len` bytes and checks them against the pattern.
async fn read_pattern<R: AsyncRead + Unpin>(stream: &mut R, len: usize) {
    let mut got = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut got))
        .await
        .expect("reading the held bytes timed out")
        .unwrap();
    assert!(got == pattern(0, len), "held bytes came back altered");
}

/// Sends the first byte of a new stream (so that it reaches the other side).
async fn send_first_byte<W: AsyncWrite + Unpin>(out: &mut W) {
    out.write_all(b"x").await.unwrap();
    out.flush().await.unwrap();
}

/// Reads the first byte of an accepted stream.
async fn read_first_byte<R: AsyncRead + Unpin>(inbound: &mut R) {
    let mut first = [0u8; 1];
    inbound.read_exact(&mut first).await.unwrap();
}

/// Writes 1 MiB more of the pattern after `credit` bytes and closes, in a task.
fn finish_writing<W>(mut out: W, credit: usize) -> tokio::task::JoinHandle<W>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        out.write_all(&pattern(credit, 1 << 20)).await.unwrap();
        out.close().await.unwrap();
        out
    })
}

/// Reads the pattern up to `len`, then expects the FIN.
async fn read_pattern_to_end<R: AsyncRead + Unpin>(inbound: &mut R, len: usize) {
    read_pattern(inbound, len).await;
    let mut rest = Vec::new();
    inbound.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

/// Waits until yamux's first ping was answered, so the round trip is known.
async fn settle_rtt() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// weft to weft: the credit a stream gets while its reader reads nothing.
async fn unread_credit(config: YamuxConfig) -> usize {
    let (client, server) = weft_pair(config).await;
    settle_rtt().await;
    let mut out = client.open_stream().await.unwrap();
    send_first_byte(&mut out).await;
    let mut inbound = server.accept_stream().await.unwrap();
    read_first_byte(&mut inbound).await;
    let credit = write_until_blocked(&mut out).await;
    // Now the reader catches up, sees every byte in order, then the FIN.
    let writer = finish_writing(out, credit);
    read_pattern_to_end(&mut inbound, credit + (1 << 20)).await;
    // The stream still works the other way.
    inbound.write_all(b"done").await.unwrap();
    inbound.close().await.unwrap();
    let mut out = writer.await.unwrap();
    let mut answer = Vec::new();
    out.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"done");
    credit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_nobody_reads_gets_the_spec_window_and_no_more_by_default() {
    assert_eq!(
        unread_credit(YamuxConfig::default()).await,
        STREAM_WINDOW - 1
    );
    let no_growth = YamuxConfig::default().with_window_boost(None);
    assert_eq!(unread_credit(no_growth).await, STREAM_WINDOW - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_yamux_gets_the_spec_window_from_a_reader_that_does_not_read() {
    let (a, b) = tcp_pair().await;
    let mut libp2p = Libp2pPeer::spawn(a, true).await;
    let (weft, _driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    settle_rtt().await;
    let mut out = libp2p.open().await.unwrap();
    send_first_byte(&mut out).await;
    let mut inbound = weft.accept_stream().await.unwrap();
    read_first_byte(&mut inbound).await;
    let credit = write_until_blocked(&mut out).await;
    assert_eq!(credit, STREAM_WINDOW - 1);
    let writer = finish_writing(out, credit);
    read_pattern_to_end(&mut inbound, credit + (1 << 20)).await;
    drop(writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_sends_into_a_libp2p_window_unchanged() {
    let (a, b) = tcp_pair().await;
    let (weft, _driver) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let mut libp2p = Libp2pPeer::spawn(b, false).await;
    settle_rtt().await;
    let mut out = weft.open_stream().await.unwrap();
    send_first_byte(&mut out).await;
    let mut inbound = libp2p.accept().await.unwrap();
    read_first_byte(&mut inbound).await;
    let credit = write_until_blocked(&mut out).await;
    assert_eq!(credit, STREAM_WINDOW - 1);
    let writer = finish_writing(out, credit);
    read_pattern_to_end(&mut inbound, credit + (1 << 20)).await;
    drop(writer.await.unwrap());
}

/// Sends `total` bytes of the pattern from `client` to `server` on a new stream, the
/// server reading as fast as it can; checks every byte.
async fn transfer(
    client: &std::sync::Arc<dyn weft_upgrader::MuxedConnection>,
    server: &std::sync::Arc<dyn weft_upgrader::MuxedConnection>,
    total: usize,
) {
    let mut out = client.open_stream().await.unwrap();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            let n = (total - sent).min(256 * 1024);
            out.write_all(&pattern(sent, n)).await.unwrap();
            sent += n;
        }
        out.close().await.unwrap();
        out
    });
    let mut inbound = server.accept_stream().await.unwrap();
    read_pattern_to_end(&mut inbound, total).await;
    drop(writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_keeps_up_on_a_long_link_earns_window_within_its_budget() {
    // 40 ms round trips; the connection's budget is 16 MiB (growth may use 80%).
    let (a, b, _relay) = relayed_pair(Duration::from_millis(20)).await;
    let (budget_source, budget) = CountingBudget::new(16 << 20);
    let yamux = Yamux::new();
    let (client, _client_driver) = weft_peer_with(&yamux, a, Role::Initiator, Budget::unlimited());
    let (server, _server_driver) = weft_peer_with(&yamux, b, Role::Responder, budget);
    settle_rtt().await;
    within(
        60,
        "a 24 MiB transfer through the relay",
        transfer(&client, &server, 24 << 20),
    )
    .await;
    assert!(yamux.stats().windows_grown() > 0, "no window growth");
    assert!(budget_source.peak() <= 16 << 20);
    // All the stream's memory came back once it was dropped.
    eventually(5, "the budget empties", || budget_source.used() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_growth_leaves_the_stream_working_at_its_window() {
    // A budget whose high share (80% of 600 KiB) is below any growth worth granting
    // beside the held bytes: every growth is denied, the transfer still completes.
    let (a, b, _relay) = relayed_pair(Duration::from_millis(20)).await;
    let (budget_source, budget) = CountingBudget::new(2 << 20);
    let yamux = Yamux::new();
    let (client, _c) = weft_peer_with(&yamux, a, Role::Initiator, Budget::unlimited());
    let (server, _s) = weft_peer_with(&yamux, b, Role::Responder, budget);
    settle_rtt().await;
    within(
        60,
        "a 6 MiB transfer through the relay",
        transfer(&client, &server, 6 << 20),
    )
    .await;
    assert!(yamux.stats().growth_denied() > 0, "no growth was denied");
    assert_eq!(yamux.stats().streams_shed(), 0);
    assert!(budget_source.peak() <= 2 << 20);
    eventually(5, "the budget empties", || budget_source.used() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_bytes_are_charged_and_come_back_when_streams_and_the_connection_drop() {
    let (a, b) = tcp_pair().await;
    let (budget_source, budget) = CountingBudget::new(1 << 30);
    let yamux = Yamux::new();
    let (client, _c) = weft_peer_with(&yamux, a, Role::Initiator, Budget::unlimited());
    let (server, server_driver) = weft_peer_with(&yamux, b, Role::Responder, budget);
    let mut kept = Vec::new();
    for _ in 0..4 {
        let mut out = client.open_stream().await.unwrap();
        send_first_byte(&mut out).await;
        let mut inbound = server.accept_stream().await.unwrap();
        read_first_byte(&mut inbound).await;
        let credit = write_until_blocked(&mut out).await;
        assert_eq!(credit, STREAM_WINDOW - 1);
        kept.push((out, inbound));
    }
    // Four streams nobody reads on: each holds the spec's window, less the first
    // byte that was read, and no more.
    eventually(5, "four windows charged", || {
        budget_source.used() == 4 * (STREAM_WINDOW - 1)
    })
    .await;
    // Reading one window's worth returns it; dropping a stream returns the rest.
    let (_, inbound) = &mut kept[0];
    read_pattern_at(inbound, 0, STREAM_WINDOW - 1).await;
    eventually(5, "a read window given back", || {
        budget_source.used() <= 3 * (STREAM_WINDOW - 1) + 128 * 1024
    })
    .await;
    drop(kept.pop());
    eventually(5, "a dropped stream given back", || {
        budget_source.used() <= 2 * (STREAM_WINDOW - 1) + 128 * 1024
    })
    .await;
    // The connection's end returns everything.
    server.close().await.unwrap();
    within(5, "the driver ends", server_driver)
        .await
        .unwrap()
        .unwrap();
    drop(kept);
    eventually(5, "the budget empties", || budget_source.used() == 0).await;
}

/// Reads `len` bytes and checks them against the pattern from `offset` on.
async fn read_pattern_at<R: AsyncRead + Unpin>(stream: &mut R, offset: usize, len: usize) {
    let mut got = vec![0u8; len];
    within(20, "reading", stream.read_exact(&mut got))
        .await
        .unwrap();
    assert!(got == pattern(offset, len), "bytes came back altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_resets_the_stream_holding_the_most_unread_bytes() {
    // Unread bytes in the spec's windows may fill (15 + 1) / 256 of 10 MiB = 640 KiB:
    // two full windows fit, a third does not.
    let (a, b) = tcp_pair().await;
    let (budget_source, budget) = CountingBudget::new(10 << 20);
    let yamux = Yamux::new();
    let (client, _c) = weft_peer_with(&yamux, a, Role::Initiator, Budget::unlimited());
    let (server, _s) = weft_peer_with(&yamux, b, Role::Responder, budget);
    let mut streams = Vec::new();
    for fill in [STREAM_WINDOW - 1, STREAM_WINDOW - 1] {
        let mut out = client.open_stream().await.unwrap();
        send_first_byte(&mut out).await;
        let mut inbound = server.accept_stream().await.unwrap();
        read_first_byte(&mut inbound).await;
        assert_eq!(write_until_blocked(&mut out).await, fill);
        streams.push((out, inbound));
    }
    assert_eq!(yamux.stats().streams_shed(), 0);
    // A third stream sends 200 KB: the first stream (holding as much as the second,
    // opened first) is reset, the newcomer keeps going.
    let mut third = client.open_stream().await.unwrap();
    third.write_all(&pattern(0, 200_000)).await.unwrap();
    third.flush().await.unwrap();
    let mut third_in = server.accept_stream().await.unwrap();
    eventually(5, "a stream shed", || yamux.stats().streams_shed() == 1).await;
    let (first_out, first_in) = &mut streams[0];
    let mut byte = [0u8; 1];
    let read = within(5, "the shed stream's read", first_in.read(&mut byte)).await;
    let err = read.expect_err("the shed stream must fail");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(err.to_string().contains("memory budget"), "{err}");
    // The remote sees the reset too.
    let write = within(5, "the shed stream's writer", async {
        loop {
            if let Err(e) = first_out.write_all(&[0u8; 1024]).await {
                return e;
            }
            first_out.flush().await.ok();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(write.kind(), ErrorKind::ConnectionReset, "{write}");
    // The others work on and the budget holds.
    read_pattern_at(&mut third_in, 0, 200_000).await;
    let (_, second_in) = &mut streams[1];
    read_pattern_at(second_in, 0, STREAM_WINDOW - 1).await;
    assert!(
        budget_source.peak() <= 640 * 1024,
        "{}",
        budget_source.peak()
    );
    drop(streams);
    drop((third, third_in));
    eventually(5, "the budget empties", || budget_source.used() == 0).await;
}

/// A yamux frame header.
fn header(frame_type: u8, flags: u16, stream: u32, length: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[1] = frame_type;
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..8].copy_from_slice(&stream.to_be_bytes());
    h[8..12].copy_from_slice(&length.to_be_bytes());
    h
}

/// Reads the next frame as a raw yamux client: (type, flags, stream, length),
/// skipping data bodies.
async fn raw_frame(raw: &mut tokio::net::TcpStream) -> (u8, u16, u32, u32) {
    let mut h = [0u8; 12];
    raw.read_exact(&mut h).await.unwrap();
    let (kind, flags) = (h[1], u16::from_be_bytes([h[2], h[3]]));
    let stream = u32::from_be_bytes(h[4..8].try_into().unwrap());
    let length = u32::from_be_bytes(h[8..12].try_into().unwrap());
    if kind == 0 {
        let mut body = vec![0u8; length as usize];
        raw.read_exact(&mut body).await.unwrap();
    }
    (kind, flags, stream, length)
}

/// As a raw yamux client on `raw`: answers weft's first ping 300 ms late (a remote
/// can inflate the round trip so), opens stream 1 and sends two windows as fast as
/// the credit allows while the application reads them; returns the growth weft
/// grants and the credit left. The application must read 512 KiB.
async fn earn_grant(raw: &mut tokio::net::TcpStream) -> (u32, usize) {
    within(10, "the first ping", async {
        loop {
            let (kind, flags, _, value) = raw_frame(raw).await;
            if kind == 2 && flags & 0x1 != 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                raw.write_all(&header(2, 0x2, 0, value)).await.unwrap();
                return;
            }
        }
    })
    .await;
    raw.write_all(&header(1, 0x1, 1, 0)).await.unwrap();
    let mut credit = STREAM_WINDOW;
    send_raw_data(raw, 0, STREAM_WINDOW).await;
    credit -= STREAM_WINDOW;
    let mut sent = STREAM_WINDOW;
    within(10, "a window growth", async {
        loop {
            let (kind, _, stream, length) = raw_frame(raw).await;
            if kind != 1 || stream != 1 {
                continue;
            }
            credit += length as usize;
            if length as usize > STREAM_WINDOW {
                return (length, credit);
            }
            if credit >= STREAM_WINDOW && sent < 2 * STREAM_WINDOW {
                send_raw_data(raw, sent, STREAM_WINDOW).await;
                credit -= STREAM_WINDOW;
                sent += STREAM_WINDOW;
            }
        }
    })
    .await
}

/// Sends `len` bytes of the pattern from `offset` on stream 1 as a raw yamux client.
async fn send_raw_data(raw: &mut tokio::net::TcpStream, offset: usize, len: usize) {
    let chunk = 256 * 1024;
    let mut sent = 0;
    while sent < len {
        let n = chunk.min(len - sent);
        raw.write_all(&header(0, 0, 1, n as u32)).await.unwrap();
        raw.write_all(&pattern(offset + sent, n)).await.unwrap();
        sent += n;
    }
}

/// Accepts stream 1 and reads its first 512 KiB, then reads no more.
fn read_two_windows(
    weft: std::sync::Arc<dyn weft_upgrader::MuxedConnection>,
) -> tokio::task::JoinHandle<weft_upgrader::BoxedStream> {
    tokio::spawn(async move {
        let mut inbound = weft.accept_stream().await.unwrap();
        read_pattern_at(&mut inbound, 0, 2 * STREAM_WINDOW).await;
        inbound
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bytes_are_read_before_the_end_of_the_connection_shows() {
    let (mut raw, b) = tcp_pair().await;
    let (weft, _driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    let reader = read_two_windows(weft);
    let (grant, credit) = earn_grant(&mut raw).await;
    // 64 x 512 KiB consumed, less the window the stream had.
    assert_eq!(grant as usize, 128 * STREAM_WINDOW - STREAM_WINDOW);
    let mut inbound = within(5, "the reader", reader).await.unwrap();
    // The whole credit, most of it held beyond yamux's window, then the socket ends
    // without a FIN for the stream.
    send_raw_data(&mut raw, 2 * STREAM_WINDOW, credit).await;
    raw.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    read_pattern_at(&mut inbound, 2 * STREAM_WINDOW, credit).await;
    // Then the stream reports the connection's end: not a clean EOF, no FIN came.
    let mut rest = [0u8; 1];
    let end = tokio::time::timeout(Duration::from_secs(5), inbound.read(&mut rest))
        .await
        .expect("the end of the connection never showed");
    assert!(
        end.is_err(),
        "expected an error after the held bytes, got {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_overruns_its_grown_credit_fails_the_connection() {
    let (mut raw, b) = tcp_pair().await;
    let (weft, driver) = weft_peer(b, Role::Responder, YamuxConfig::default());
    let reader = read_two_windows(weft);
    let (_, credit) = earn_grant(&mut raw).await;
    // The application reads no more. Send all the credit, then one byte more.
    let _inbound = within(5, "the reader", reader).await.unwrap();
    send_raw_data(&mut raw, 2 * STREAM_WINDOW, credit).await;
    // Within the credit: the connection is still up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!driver.is_finished(), "failed within the credit");
    raw.write_all(&header(0, 0, 1, 1)).await.unwrap();
    raw.write_all(&[7]).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the overrun did not end the connection")
        .unwrap();
    let err = result.expect_err("an overrun must fail the connection");
    assert!(
        err.to_string().contains("window"),
        "unexpected error: {err}"
    );
}
