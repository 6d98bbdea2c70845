//! The window boost over real TCP: what a sender may write before the reader reads,
//! the held bytes arriving intact and in order, with weft and with rust-libp2p's
//! yamux as the sender, and a peer that overruns its credit failing the connection.

mod support;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::Duration;
use support::libp2p_peer::Libp2pPeer;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use weft_muxer_yamux::{WindowBoost, YamuxConfig, STREAM_WINDOW};
use weft_upgrader::Role;

const EXTRA: u32 = 4 << 20;

/// A boost that grants the whole `EXTRA` as soon as any round trip is measured.
fn boosted() -> YamuxConfig {
    YamuxConfig::default().with_window_boost(Some(WindowBoost {
        link_rate: u64::MAX,
        max_per_stream: EXTRA,
        max_per_connection: 64 << 20,
    }))
}

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
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn weft_sender_weft_receiver(config: YamuxConfig) -> usize {
    let (client, server) = weft_pair(config).await;
    settle().await;
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
async fn a_boosted_stream_takes_its_extra_window_at_once_and_loses_nothing() {
    let credit = weft_sender_weft_receiver(boosted()).await;
    assert_eq!(credit, STREAM_WINDOW - 1 + EXTRA as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_boost_the_credit_is_the_spec_window() {
    let credit = weft_sender_weft_receiver(YamuxConfig::default().with_window_boost(None)).await;
    assert_eq!(credit, STREAM_WINDOW - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_yamux_sends_into_the_boosted_window() {
    let (a, b) = tcp_pair().await;
    let mut libp2p = Libp2pPeer::spawn(a, true).await;
    let (weft, _driver) = weft_peer(b, Role::Responder, boosted());
    settle().await;
    let mut out = libp2p.open().await.unwrap();
    send_first_byte(&mut out).await;
    let mut inbound = weft.accept_stream().await.unwrap();
    read_first_byte(&mut inbound).await;
    let credit = write_until_blocked(&mut out).await;
    assert_eq!(credit, STREAM_WINDOW - 1 + EXTRA as usize);
    let writer = finish_writing(out, credit);
    read_pattern_to_end(&mut inbound, credit + (1 << 20)).await;
    drop(writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_sends_into_a_libp2p_window_unchanged() {
    let (a, b) = tcp_pair().await;
    let (weft, _driver) = weft_peer(a, Role::Initiator, boosted());
    let mut libp2p = Libp2pPeer::spawn(b, false).await;
    settle().await;
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

/// A yamux frame header.
fn header(frame_type: u8, flags: u16, stream: u32, length: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[1] = frame_type;
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..8].copy_from_slice(&stream.to_be_bytes());
    h[8..12].copy_from_slice(&length.to_be_bytes());
    h
}

/// As a raw yamux client on `raw`: opens stream 1, answers weft's pings and returns
/// the extra window weft grants stream 1.
async fn open_and_wait_for_grant(raw: &mut tokio::net::TcpStream) -> u32 {
    raw.write_all(&header(1, 0x1, 1, 0)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut h = [0u8; 12];
            raw.read_exact(&mut h).await.unwrap();
            let (kind, flags) = (h[1], u16::from_be_bytes([h[2], h[3]]));
            let stream = u32::from_be_bytes(h[4..8].try_into().unwrap());
            let length = u32::from_be_bytes(h[8..12].try_into().unwrap());
            match kind {
                2 if flags & 0x1 != 0 => raw.write_all(&header(2, 0x2, 0, length)).await.unwrap(),
                1 if stream == 1 && length > 0 => return length,
                0 => {
                    let mut body = vec![0u8; length as usize];
                    raw.read_exact(&mut body).await.unwrap();
                }
                _ => {}
            }
        }
    })
    .await
    .expect("no extra window granted")
}

/// Sends `len` bytes of the pattern on stream 1 as a raw yamux client.
async fn send_raw_data(raw: &mut tokio::net::TcpStream, len: usize) {
    let chunk = 256 * 1024;
    let mut sent = 0;
    while sent < len {
        let n = chunk.min(len - sent);
        raw.write_all(&header(0, 0, 1, n as u32)).await.unwrap();
        raw.write_all(&pattern(sent, n)).await.unwrap();
        sent += n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bytes_are_read_before_the_end_of_the_connection_shows() {
    let (mut raw, b) = tcp_pair().await;
    let (weft, _driver) = weft_peer(b, Role::Responder, boosted());
    assert_eq!(open_and_wait_for_grant(&mut raw).await, EXTRA);
    let mut inbound = weft.accept_stream().await.unwrap();
    // The whole credit, most of it held beyond yamux's window, then the socket ends
    // without a FIN for the stream.
    let credit = STREAM_WINDOW + EXTRA as usize;
    send_raw_data(&mut raw, credit).await;
    raw.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    read_pattern(&mut inbound, credit).await;
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
async fn a_peer_that_overruns_its_boosted_credit_fails_the_connection() {
    let (mut raw, b) = tcp_pair().await;
    let (weft, driver) = weft_peer(b, Role::Responder, boosted());
    let granted = open_and_wait_for_grant(&mut raw).await;
    assert_eq!(granted, EXTRA);
    // Nobody reads stream 1 on weft's side. Send all the credit, then one byte more.
    let _inbound = weft.accept_stream().await.unwrap();
    send_raw_data(&mut raw, STREAM_WINDOW + EXTRA as usize).await;
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
