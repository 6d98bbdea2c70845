//! Hostile and broken peers: every guard of the codec, the dialer and the listener,
//! round bounds, silent and closing peers, plus property tests of the codec and random
//! bytes fed to the listener.

mod common;

use common::{duplex, frame, frames, read_n};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use proptest::prelude::*;
use std::time::Duration;
use weft_mss::codec::{decode, encode_line, Message};
use weft_mss::{
    dialer_select_with, listener_select, listener_select_with, Config, NegotiationError, Protocols,
    Version,
};

const HDR: &str = "/multistream/1.0.0";
const LIMIT: Duration = Duration::from_secs(5);

/// Runs our listener against raw `input` from a peer that then keeps the stream open.
async fn listener_against(input: Vec<u8>, config: Config) -> Result<String, NegotiationError> {
    let (mut peer, b) = duplex();
    peer.write_all(&input).await.unwrap();
    let supported = Protocols::new().with_exact("/ok");
    let result = tokio::time::timeout(LIMIT, listener_select_with(b, &supported, &config))
        .await
        .expect("the listener must decide from the bytes it has, not wait");
    drop(peer);
    result.map(|(p, _)| p)
}

/// Runs our dialer (proposing "/ok") against a peer that answers with raw `input`.
async fn dialer_against(input: Vec<u8>) -> Result<String, NegotiationError> {
    let (a, mut peer) = duplex();
    peer.write_all(&input).await.unwrap();
    let result = tokio::time::timeout(
        LIMIT,
        dialer_select_with(a, ["/ok"], Version::V1, &Config::default()),
    )
    .await
    .expect("the dialer must decide from the bytes it has, not wait");
    drop(peer);
    result.map(|(p, _)| p)
}

fn with_header(rest: &[u8]) -> Vec<u8> {
    let mut v = frame(HDR);
    v.extend_from_slice(rest);
    v
}

#[tokio::test]
async fn wrong_header_is_rejected_by_both_roles() {
    let wrong = frames(&["/multistream/2.0.0", "/ok"]);
    assert!(matches!(
        listener_against(wrong.clone(), Config::default()).await,
        Err(NegotiationError::InvalidHeader { received }) if received == "/multistream/2.0.0"
    ));
    assert!(matches!(
        dialer_against(wrong).await,
        Err(NegotiationError::InvalidHeader { .. })
    ));
    // A proposal before the header is a wrong header too.
    assert!(matches!(
        listener_against(frames(&["/ok", HDR]), Config::default()).await,
        Err(NegotiationError::InvalidHeader { .. })
    ));
}

#[tokio::test]
async fn oversized_length_is_rejected_from_the_prefix_alone() {
    // Announces 1025 bytes and sends none of them: the guard must not wait for them.
    let r = listener_against(with_header(&[0x81, 0x08]), Config::default()).await;
    assert!(
        matches!(
            r,
            Err(NegotiationError::MessageTooLong {
                len: 1025,
                max: 1024
            })
        ),
        "{r:?}"
    );
    // A prefix whose third byte is still a continuation byte: > 1024 for sure.
    let r = listener_against(with_header(&[0xff, 0xff]), Config::default()).await;
    assert!(
        matches!(r, Err(NegotiationError::MessageTooLong { .. })),
        "{r:?}"
    );
    // A huge announced length (no allocation of that size happens).
    let r = dialer_against(with_header(&[0xff, 0xff, 0xff, 0xff, 0x0f])).await;
    assert!(
        matches!(r, Err(NegotiationError::MessageTooLong { .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn configured_message_bound_applies() {
    let long = format!("/{}", "y".repeat(60));
    let input = with_header(&frame(&long));
    let small = Config::default().with_max_message_len(40);
    assert!(matches!(
        listener_against(input.clone(), small).await,
        Err(NegotiationError::MessageTooLong { len: 62, max: 40 })
    ));
    // Within the default bound the same message is just refused with `na`.
    let (mut peer, b) = duplex();
    peer.write_all(&input).await.unwrap();
    let task = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/ok");
        listener_select(b, &supported).await
    });
    assert_eq!(read_n(&mut peer, 24).await, frames(&[HDR, "na"]));
    drop(peer);
    assert!(matches!(
        task.await.unwrap(),
        Err(NegotiationError::ConnectionClosed)
    ));
}

#[tokio::test]
async fn truncated_varint_then_close_is_connection_closed() {
    let (mut peer, b) = duplex();
    peer.write_all(&with_header(&[0x80])).await.unwrap();
    drop(peer);
    let supported = Protocols::new().with_exact("/ok");
    let r = tokio::time::timeout(LIMIT, listener_select(b, &supported))
        .await
        .unwrap();
    assert!(
        matches!(&r, Err(NegotiationError::ConnectionClosed))
            || matches!(&r, Err(NegotiationError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe),
        "{r:?}"
    );
}

#[tokio::test]
async fn malformed_messages_are_invalid() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "non-minimal varint",
            vec![0x84, 0x00, b'/', b'o', b'k', b'\n'],
        ),
        ("invalid UTF-8", vec![0x04, b'/', 0xc3, 0x28, b'\n']),
        ("missing newline", vec![0x03, b'/', b'o', b'k']),
        ("empty message", vec![0x00]),
        ("inner newline", vec![0x04, b'/', b'\n', b'k', b'\n']),
    ];
    for (what, bytes) in cases {
        let r = listener_against(with_header(&bytes), Config::default()).await;
        assert!(
            matches!(r, Err(NegotiationError::InvalidMessage(_))),
            "listener, {what}: {r:?}"
        );
        let r = dialer_against(with_header(&bytes)).await;
        assert!(
            matches!(r, Err(NegotiationError::InvalidMessage(_))),
            "dialer, {what}: {r:?}"
        );
    }
    // The header itself malformed.
    let mut bad_header = vec![0x13];
    bad_header.extend_from_slice(&[0xff; 18]);
    bad_header.push(b'\n');
    let r = listener_against(bad_header, Config::default()).await;
    assert!(
        matches!(r, Err(NegotiationError::InvalidMessage(_))),
        "{r:?}"
    );
}

#[tokio::test]
async fn unexpected_messages_are_typed() {
    // The listener answers something other than an echo or na.
    let r = dialer_against(frames(&[HDR, "/other"])).await;
    assert!(
        matches!(r, Err(NegotiationError::UnexpectedMessage { .. })),
        "{r:?}"
    );
    let r = dialer_against(frames(&[HDR, HDR])).await;
    assert!(
        matches!(r, Err(NegotiationError::UnexpectedMessage { .. })),
        "{r:?}"
    );
    // The dialer sends `na` or a second header.
    for second in ["na", HDR] {
        let r = listener_against(frames(&[HDR, second]), Config::default()).await;
        assert!(
            matches!(r, Err(NegotiationError::UnexpectedMessage { .. })),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn peer_closing_mid_negotiation_is_connection_closed() {
    // Listener side: header, then close.
    let (mut peer, b) = duplex();
    peer.write_all(&frame(HDR)).await.unwrap();
    drop(peer);
    let supported = Protocols::new().with_exact("/ok");
    // The listener may notice on reading (EOF) or on sending its header (broken pipe).
    let r = listener_select(b, &supported).await;
    assert!(
        matches!(&r, Err(NegotiationError::ConnectionClosed))
            || matches!(&r, Err(NegotiationError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe),
        "{r:?}"
    );
    // Dialer side: the peer answers its header and half a message, then closes.
    let mut input = frame(HDR);
    input.extend_from_slice(&[0x04, b'/', b'o']);
    let (a, mut peer) = duplex();
    let closer = tokio::spawn(async move {
        assert_eq!(read_n(&mut peer, 25).await, frames(&[HDR, "/ok"]));
        peer.write_all(&input).await.unwrap();
    });
    let r = dialer_select_with(a, ["/ok"], Version::V1, &Config::default()).await;
    assert!(
        matches!(r, Err(NegotiationError::ConnectionClosed)),
        "{r:?}"
    );
    closer.await.unwrap();
}

#[tokio::test]
async fn listener_bounds_na_rounds() {
    let (mut peer, b) = duplex();
    let mut input = frame(HDR);
    for i in 0..50 {
        input.extend_from_slice(&frame(&format!("/unknown/{i}")));
    }
    peer.write_all(&input).await.unwrap();
    let config = Config::default().with_max_na_rounds(5);
    let supported = Protocols::new().with_exact("/ok");
    let r = tokio::time::timeout(LIMIT, listener_select_with(b, &supported, &config))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(NegotiationError::TooManyRounds { max: 5 })),
        "{r:?}"
    );
    // Exactly five refusals were sent (after the header).
    let mut answers = Vec::new();
    peer.read_to_end(&mut answers).await.unwrap();
    let mut expected = frame(HDR);
    for _ in 0..5 {
        expected.extend_from_slice(&frame("na"));
    }
    assert_eq!(answers, expected);
}

#[tokio::test]
async fn listener_bounds_ls_rounds_too() {
    let mut input = frame(HDR);
    for _ in 0..10 {
        input.extend_from_slice(&frame("ls"));
    }
    let r = listener_against(input, Config::default().with_max_na_rounds(3)).await;
    assert!(
        matches!(r, Err(NegotiationError::TooManyRounds { max: 3 })),
        "{r:?}"
    );
}

#[tokio::test]
async fn dialer_bounds_na_rounds_with_endless_proposals() {
    // A listener that refuses everything, forever; a dialer with endless proposals.
    let (a, mut peer) = duplex();
    let refuser = tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        peer.write_all(&frame(HDR)).await.unwrap();
        loop {
            match peer.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if peer.write_all(&frame("na")).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let endless = (0u64..).map(|i| format!("/p/{i}"));
    let config = Config::default().with_max_na_rounds(8);
    let r = tokio::time::timeout(LIMIT, dialer_select_with(a, endless, Version::V1, &config))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(NegotiationError::TooManyRounds { max: 8 })),
        "{r:?}"
    );
    refuser.await.unwrap();
}

#[tokio::test]
async fn silent_peer_is_cut_by_the_callers_timeout_and_nothing_leaks() {
    let (a, mut peer) = duplex();
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        dialer_select_with(a, ["/ok"], Version::V1, &Config::default()),
    )
    .await;
    assert!(r.is_err(), "the timeout must fire");
    // The dropped future released the stream: the peer reads our proposal, then EOF.
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, frames(&[HDR, "/ok"]));

    let (mut peer, b) = duplex();
    let supported = Protocols::new().with_exact("/ok");
    let r = tokio::time::timeout(Duration::from_millis(100), listener_select(b, &supported)).await;
    assert!(r.is_err());
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert!(got.is_empty());
}

#[tokio::test]
async fn non_protocol_text_and_simultaneous_connect_get_na() {
    let (mut peer, b) = duplex();
    let task = tokio::spawn(async move {
        // A match-everything listener still refuses the simultaneous-open marker.
        let supported = Protocols::new().with_match("/any", |_| true);
        listener_select(b, &supported).await.map(|(p, _)| p)
    });
    peer.write_all(&frames(&[
        HDR,
        "/libp2p/simultaneous-connect",
        "hello",
        "/real",
    ]))
    .await
    .unwrap();
    let expected = frames(&[HDR, "na", "na", "/real"]);
    assert_eq!(read_n(&mut peer, expected.len()).await, expected);
    assert_eq!(task.await.unwrap().unwrap(), "/real");
}

/// Decodes `input` fed in pieces cut at `cuts`, as a reader would see it.
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Result<Vec<Message>, NegotiationError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut fed = 0;
    for cut in cuts {
        buffer.extend_from_slice(&input[fed..cut]);
        fed = cut;
        while let Some((msg, used)) = decode(&buffer, 1024)? {
            out.push(msg);
            buffer.drain(..used);
        }
    }
    assert!(buffer.is_empty());
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn codec_round_trip(texts in prop::collection::vec("[^\n]{0,300}", 1..8)) {
        let mut bytes = Vec::new();
        for t in &texts {
            encode_line(t, &mut bytes);
        }
        let decoded = decode_in_pieces(&bytes, &[]).unwrap();
        let expected: Vec<Message> = texts.iter().map(|t| Message::parse(t)).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn any_split_decodes_the_same(
        texts in prop::collection::vec("/[a-z0-9/._-]{0,200}", 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut bytes = Vec::new();
        for t in &texts {
            encode_line(t, &mut bytes);
        }
        let whole = decode_in_pieces(&bytes, &[]).unwrap();
        let pieces = decode_in_pieces(&bytes, &cuts).unwrap();
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        match decode(&input, 1024) {
            Ok(Some((_, used))) => prop_assert!(used <= input.len() && used > 0),
            Ok(None) => prop_assert!(input.len() < 1024 + 3),
            Err(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_to_the_listener_end_in_a_typed_result(
        body in prop::collection::vec(any::<u8>(), 0..600),
        with_hdr in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let input = if with_hdr { with_header(&body) } else { body };
        let result = rt.block_on(async move {
            let (mut peer, b) = duplex();
            peer.write_all(&input).await.unwrap();
            drop(peer); // then EOF: the listener must finish, never hang.
            let supported = Protocols::new().with_exact("/ok");
            tokio::time::timeout(LIMIT, listener_select(b, &supported)).await
        });
        let outcome = result.expect("listener hung on random input");
        if let Ok((p, _)) = outcome {
            prop_assert_eq!(p, "/ok");
        }
    }
}
