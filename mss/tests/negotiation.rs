//! Byte-exact transcripts of both roles, one-write guarantees, lazy mode, pipelined
//! data, `ls`, and round trips over an in-memory duplex and real TCP on 127.0.0.1.

mod common;

use common::{duplex, frame, frames, read_n, tcp_pair, Recording};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use weft_mss::{
    dialer_select, dialer_select_with, listener_select, Config, NegotiationError, Protocols,
    Version,
};

const HDR: &str = "/multistream/1.0.0";

#[tokio::test]
async fn dialer_and_listener_transcripts_with_one_na() {
    let (a, b) = duplex();
    let (a, dialer_writes) = Recording::new(a);
    let (b, listener_writes) = Recording::new(b);
    let supported = Protocols::new().with_exact("/b");
    let (dialed, listened) = tokio::join!(
        dialer_select(a, ["/a", "/b"], Version::V1),
        listener_select(b, &supported)
    );
    let (p1, _s1) = dialed.unwrap();
    let (p2, _s2) = listened.unwrap();
    assert_eq!((p1.as_str(), p2.as_str()), ("/b", "/b"));
    // Header and first proposal in ONE write; then the second proposal.
    assert_eq!(
        *dialer_writes.lock().unwrap(),
        vec![frames(&[HDR, "/a"]), frame("/b")]
    );
    // Header and first answer in ONE write; then the echo.
    assert_eq!(
        *listener_writes.lock().unwrap(),
        vec![frames(&[HDR, "na"]), frame("/b")]
    );
}

#[tokio::test]
async fn dialer_sends_header_and_proposal_before_hearing_the_listener() {
    // The peer says nothing until it has seen our header and proposal.
    let (a, mut peer) = duplex();
    let dialer = tokio::spawn(dialer_select(a, ["/echo/1.0.0"], Version::V1));
    let expected = frames(&[HDR, "/echo/1.0.0"]);
    assert_eq!(read_n(&mut peer, expected.len()).await, expected);
    peer.write_all(&frames(&[HDR, "/echo/1.0.0"]))
        .await
        .unwrap();
    let (p, _) = dialer.await.unwrap().unwrap();
    assert_eq!(p, "/echo/1.0.0");
}

#[tokio::test]
async fn listener_sends_its_header_alone_if_the_dialer_waits_for_it() {
    // A dialer that sends only its header and waits must still get ours.
    let (mut peer, b) = duplex();
    let listener = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/x");
        listener_select(b, &supported).await.map(|(p, _)| p)
    });
    peer.write_all(&frame(HDR)).await.unwrap();
    assert_eq!(read_n(&mut peer, 20).await, frame(HDR));
    peer.write_all(&frame("/x")).await.unwrap();
    assert_eq!(read_n(&mut peer, 4).await, frame("/x"));
    assert_eq!(listener.await.unwrap().unwrap(), "/x");
}

#[tokio::test]
async fn lazy_dialer_sends_header_proposal_and_data_in_one_write() {
    let (a, b) = duplex();
    let (a, dialer_writes) = Recording::new(a);
    let (proto, mut stream) = dialer_select(a, ["/lazy"], Version::V1Lazy).await.unwrap();
    assert_eq!(proto, "/lazy");
    assert!(stream.is_pending());
    assert!(
        dialer_writes.lock().unwrap().is_empty(),
        "nothing sent before data"
    );

    let listener = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/lazy");
        let (p, mut s) = listener_select(b, &supported).await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(b"world").await.unwrap();
        s.flush().await.unwrap();
        (p, buf)
    });
    stream.write_all(b"hello").await.unwrap();
    stream.flush().await.unwrap();
    let mut expected = frames(&[HDR, "/lazy"]);
    expected.extend_from_slice(b"hello");
    assert_eq!(dialer_writes.lock().unwrap().first(), Some(&expected));

    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"world");
    assert!(!stream.is_pending());
    let (p, got) = listener.await.unwrap();
    assert_eq!((p.as_str(), &got), ("/lazy", b"hello"));
}

#[tokio::test]
async fn lazy_dialer_that_reads_first_flushes_its_proposal() {
    // A protocol where the listener speaks first: the dialer's read must send the
    // buffered proposal, or both sides would wait forever.
    let (a, b) = duplex();
    let (_, mut stream) = dialer_select(a, ["/server-first"], Version::V1Lazy)
        .await
        .unwrap();
    let listener = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/server-first");
        let (_, mut s) = listener_select(b, &supported).await.unwrap();
        s.write_all(b"banner").await.unwrap();
        s.flush().await.unwrap();
        s
    });
    let mut buf = [0u8; 6];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"banner");
    listener.await.unwrap();
}

#[tokio::test]
async fn lazy_complete_waits_for_the_echo() {
    let (a, mut peer) = duplex();
    let (_, mut stream) = dialer_select(a, ["/c"], Version::V1Lazy).await.unwrap();
    let peer_task = tokio::spawn(async move {
        let expected = frames(&[HDR, "/c"]);
        assert_eq!(read_n(&mut peer, expected.len()).await, expected);
        peer.write_all(&frames(&[HDR, "/c"])).await.unwrap();
        peer
    });
    stream.complete().await.unwrap();
    assert!(!stream.is_pending());
    // Idempotent once complete.
    stream.complete().await.unwrap();
    peer_task.await.unwrap();
}

#[tokio::test]
async fn lazy_with_several_protocols_behaves_like_v1() {
    let (a, b) = duplex();
    let (a, dialer_writes) = Recording::new(a);
    let supported = Protocols::new().with_exact("/two");
    let (dialed, listened) = tokio::join!(
        dialer_select(a, ["/one", "/two"], Version::V1Lazy),
        listener_select(b, &supported)
    );
    let (p, stream) = dialed.unwrap();
    assert_eq!(p, "/two");
    assert!(!stream.is_pending());
    assert_eq!(listened.unwrap().0, "/two");
    assert_eq!(
        *dialer_writes.lock().unwrap(),
        vec![frames(&[HDR, "/one"]), frame("/two")]
    );
}

#[tokio::test]
async fn lazy_refusal_surfaces_as_a_typed_read_error() {
    let (a, b) = duplex();
    let (_, mut stream) = dialer_select(a, ["/nope"], Version::V1Lazy).await.unwrap();
    let listener = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/other");
        listener_select(b, &supported).await
    });
    stream
        .write_all(b"data that must not be taken as accepted")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let inner = err
        .get_ref()
        .unwrap()
        .downcast_ref::<NegotiationError>()
        .unwrap();
    assert!(
        matches!(inner, NegotiationError::NoProtocolAccepted { tried } if tried == &["/nope"]),
        "{inner:?}"
    );
    // Later calls keep failing.
    let again = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::BrokenPipe);
    assert!(stream.write(b"x").await.is_err());
    drop(stream);
    // The listener saw our data as a (garbage) proposal or the close: it fails, typed.
    assert!(listener.await.unwrap().is_err());
}

#[tokio::test]
async fn lazy_wrong_echo_is_invalid_data() {
    let (a, mut peer) = duplex();
    let (_, mut stream) = dialer_select(a, ["/want"], Version::V1Lazy).await.unwrap();
    peer.write_all(&frames(&[HDR, "/else"])).await.unwrap();
    let mut buf = [0u8; 4];
    let err = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .unwrap()
        .downcast_ref::<NegotiationError>()
        .unwrap();
    assert!(matches!(inner, NegotiationError::UnexpectedMessage { .. }));
}

#[tokio::test]
async fn listener_hands_over_data_pipelined_after_the_proposal() {
    let (mut peer, b) = duplex();
    // Header, proposal and application data in one write, as a lazy dialer does.
    let mut burst = frames(&[HDR, "/p"]);
    burst.extend_from_slice(b"early bytes");
    peer.write_all(&burst).await.unwrap();
    let supported = Protocols::new().with_exact("/p");
    let (p, mut stream) = listener_select(b, &supported).await.unwrap();
    assert_eq!(p, "/p");
    let mut buf = [0u8; 11];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"early bytes");
    assert_eq!(read_n(&mut peer, 24).await, frames(&[HDR, "/p"]));
}

#[tokio::test]
async fn dialer_hands_over_data_pipelined_after_the_echo() {
    let (a, mut peer) = duplex();
    let mut burst = frames(&[HDR, "/p"]);
    burst.extend_from_slice(b"server data");
    peer.write_all(&burst).await.unwrap();
    let (_, mut stream) = dialer_select(a, ["/p"], Version::V1).await.unwrap();
    let mut buf = [0u8; 11];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"server data");
}

#[tokio::test]
async fn listener_answers_ls_then_accepts() {
    let (mut peer, b) = duplex();
    let listener = tokio::spawn(async move {
        let supported = Protocols::new()
            .with_exact("/a")
            .with_match("/b/1", |id| id.starts_with("/b/"));
        listener_select(b, &supported).await.map(|(p, _)| p)
    });
    peer.write_all(&frames(&[HDR, "ls"])).await.unwrap();
    // header, then one message: len 11 = "\x03/a\n" + "\x05/b/1\n" + "\n".
    let mut expected = frame(HDR);
    expected.extend_from_slice(b"\x0b\x03/a\n\x05/b/1\n\n");
    assert_eq!(read_n(&mut peer, expected.len()).await, expected);
    peer.write_all(&frame("/b/7")).await.unwrap();
    assert_eq!(read_n(&mut peer, 6).await, frame("/b/7"));
    assert_eq!(listener.await.unwrap().unwrap(), "/b/7");
}

#[tokio::test]
async fn no_protocol_accepted_is_typed() {
    let (a, b) = duplex();
    let supported = Protocols::new().with_exact("/z");
    let (dialed, listened) =
        tokio::join!(dialer_select(a, ["/x", "/y"], Version::V1), async move {
            // The listener sees the dialer close after two refusals.
            listener_select(b, &supported).await
        });
    match dialed {
        Err(NegotiationError::NoProtocolAccepted { tried }) => assert_eq!(tried, ["/x", "/y"]),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(listened, Err(NegotiationError::ConnectionClosed)));
}

#[tokio::test]
async fn invalid_proposals_are_rejected_before_any_io() {
    for bad in ["noslash", "/two\nlines", HDR] {
        let (a, _peer) = duplex();
        let (a, writes) = Recording::new(a);
        let err = dialer_select(a, [bad], Version::V1).await.unwrap_err();
        assert!(
            matches!(err, NegotiationError::InvalidProtocolId { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(writes.lock().unwrap().is_empty());
    }
    let (a, _peer) = duplex();
    let long = format!("/{}", "x".repeat(100));
    let config = Config::default().with_max_message_len(50);
    let err = dialer_select_with(a, [long], Version::V1, &config)
        .await
        .unwrap_err();
    assert!(matches!(err, NegotiationError::InvalidProtocolId { .. }));
    let (a, _peer) = duplex();
    let none: [&str; 0] = [];
    assert!(matches!(
        dialer_select(a, none, Version::V1).await,
        Err(NegotiationError::NoProtocolAccepted { .. })
    ));
}

#[tokio::test]
async fn tcp_round_trip_both_versions_with_data_both_ways() {
    for version in [Version::V1, Version::V1Lazy] {
        let (a, b) = tcp_pair().await;
        let listener = tokio::spawn(async move {
            let supported = Protocols::new().with_exact("/echo/1.0.0");
            let (p, mut s) = listener_select(b, &supported).await.unwrap();
            let mut buf = vec![0u8; 100_000];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
            p
        });
        let (p, mut s) = dialer_select(a, ["/echo/1.0.0"], version).await.unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        s.write_all(&data).await.unwrap();
        s.flush().await.unwrap();
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, data, "{version:?}");
        assert_eq!(p, "/echo/1.0.0");
        assert_eq!(listener.await.unwrap(), "/echo/1.0.0");
    }
}
