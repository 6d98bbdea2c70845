//! Simultaneous open: two simultaneous-open dialers on one TCP connection (many times
//! in a row), a simultaneous-open dialer against a plain listener, the transcript, and
//! the tie.

mod common;

use common::{duplex, frame, frames, read_n, tcp_pair};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use weft_mss::codec::{decode, Message};
use weft_mss::{
    dialer_select_simopen, listener_select, Config, NegotiationError, Protocols, SimOpenRole,
};

const HDR: &str = "/multistream/1.0.0";
const SIM: &str = "/libp2p/simultaneous-connect";

#[tokio::test]
async fn two_dialers_agree_on_one_initiator_50_times() {
    let config = Config::default();
    let mut initiators_on_a = 0;
    for round in 0..50 {
        let (a, b) = tcp_pair().await;
        let cfg = config.clone();
        let side_b = tokio::spawn(async move {
            let matcher = Protocols::new()
                .with_exact("/noise")
                .with_exact("/tls/1.0.0");
            dialer_select_simopen(b, ["/tls/1.0.0", "/noise"], &matcher, &cfg).await
        });
        let matcher = Protocols::new().with_exact("/noise");
        let (role_a, proto_a, mut stream_a) =
            dialer_select_simopen(a, ["/noise"], &matcher, &config)
                .await
                .unwrap();
        let (role_b, proto_b, mut stream_b) = side_b.await.unwrap().unwrap();
        assert_ne!(role_a, role_b, "round {round}: exactly one initiator");
        assert_eq!(proto_a, proto_b, "round {round}");
        // The initiator's list decides: a proposes /noise; b proposes /tls first, which a
        // refuses, then /noise.
        assert_eq!(proto_a, "/noise");
        if role_a == SimOpenRole::Initiator {
            initiators_on_a += 1;
        }
        // The streams carry data both ways afterwards.
        stream_a.write_all(b"from a").await.unwrap();
        stream_a.flush().await.unwrap();
        stream_b.write_all(b"from b").await.unwrap();
        stream_b.flush().await.unwrap();
        let mut buf = [0u8; 6];
        stream_b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from a");
        stream_a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from b");
    }
    // With fair coins, 50 rounds with the same winner every time has odds 2^-49.
    assert!(
        initiators_on_a > 0 && initiators_on_a < 50,
        "{initiators_on_a}"
    );
}

#[tokio::test]
async fn simopen_dialer_against_our_plain_listener() {
    let (a, b) = tcp_pair().await;
    let listener = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/yamux/1.0.0");
        let (p, mut s) = listener_select(b, &supported).await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        (p, buf)
    });
    let matcher = Protocols::new();
    let (role, p, mut s) = dialer_select_simopen(a, ["/yamux/1.0.0"], &matcher, &Config::default())
        .await
        .unwrap();
    assert_eq!((role, p.as_str()), (SimOpenRole::Initiator, "/yamux/1.0.0"));
    s.write_all(b"hi").await.unwrap();
    s.flush().await.unwrap();
    let (lp, got) = listener.await.unwrap();
    assert_eq!((lp.as_str(), &got), ("/yamux/1.0.0", b"hi"));
}

#[tokio::test]
async fn simopen_transcript_against_a_plain_responder() {
    let (a, mut peer) = duplex();
    let task = tokio::spawn(async move {
        let matcher = Protocols::new();
        dialer_select_simopen(a, ["/x", "/y"], &matcher, &Config::default()).await
    });
    // One write: header, simultaneous-connect, first protocol.
    let expected = frames(&[HDR, SIM, "/x"]);
    assert_eq!(read_n(&mut peer, expected.len()).await, expected);
    peer.write_all(&frames(&[HDR, "na", "na"])).await.unwrap();
    assert_eq!(read_n(&mut peer, 4).await, frame("/y"));
    peer.write_all(&frame("/y")).await.unwrap();
    let (role, p, _) = task.await.unwrap().unwrap();
    assert_eq!((role, p.as_str()), (SimOpenRole::Initiator, "/y"));
}

/// Reads messages from `peer` until one starting with `select:` and returns its text.
async fn read_select(peer: &mut (impl futures::io::AsyncRead + Unpin)) -> String {
    let mut buf = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        peer.read_exact(&mut byte).await.unwrap();
        buf.push(byte[0]);
        if let Some((msg, used)) = decode(&buf, 1024).unwrap() {
            buf.drain(..used);
            if let Message::Other(t) = msg {
                if t.starts_with("select:") {
                    return t;
                }
            }
        }
    }
}

#[tokio::test]
async fn equal_numbers_fail_with_a_tie() {
    let (a, mut peer) = duplex();
    let task = tokio::spawn(async move {
        let matcher = Protocols::new();
        dialer_select_simopen(a, ["/x"], &matcher, &Config::default()).await
    });
    peer.write_all(&frames(&[HDR, SIM, "/pipelined"]))
        .await
        .unwrap();
    // Mirror the dialer's own number back.
    let select = read_select(&mut peer).await;
    peer.write_all(&frame(&select)).await.unwrap();
    assert!(matches!(
        task.await.unwrap(),
        Err(NegotiationError::SimultaneousOpenTie)
    ));
}

#[tokio::test]
async fn scripted_remote_that_wins_makes_us_responder() {
    let (a, mut peer) = duplex();
    let task = tokio::spawn(async move {
        let matcher = Protocols::new().with_exact("/secio").with_exact("/noise");
        dialer_select_simopen(a, ["/noise"], &matcher, &Config::default()).await
    });
    peer.write_all(&frames(&[HDR, SIM, "/pipelined"]))
        .await
        .unwrap();
    let _ = read_select(&mut peer).await;
    // u64::MAX always wins (a tie is impossible unless we drew it too: 2^-64).
    peer.write_all(&frames(&[
        &format!("select:{}", u64::MAX),
        "initiator",
        "/noise",
    ]))
    .await
    .unwrap();
    // We answer `responder`, then echo the proposal.
    let expected = frames(&["responder", "/noise"]);
    assert_eq!(read_n(&mut peer, expected.len()).await, expected);
    let (role, p, _) = task.await.unwrap().unwrap();
    assert_eq!((role, p.as_str()), (SimOpenRole::Responder, "/noise"));
}

#[tokio::test]
async fn scripted_remote_that_loses_makes_us_initiator() {
    let (a, mut peer) = duplex();
    let task = tokio::spawn(async move {
        let matcher = Protocols::new();
        dialer_select_simopen(a, ["/noise"], &matcher, &Config::default()).await
    });
    peer.write_all(&frames(&[HDR, SIM, "/pipelined"]))
        .await
        .unwrap();
    let _ = read_select(&mut peer).await;
    peer.write_all(&frames(&["select:0", "responder"]))
        .await
        .unwrap();
    // We send `initiator` and our proposal in one go.
    let expected = frames(&["initiator", "/noise"]);
    assert_eq!(read_n(&mut peer, expected.len()).await, expected);
    peer.write_all(&frame("/noise")).await.unwrap();
    let (role, p, _) = task.await.unwrap().unwrap();
    assert_eq!((role, p.as_str()), (SimOpenRole::Initiator, "/noise"));
}
