//! Against a real peer: the `multistream-select` 0.14 crate of rust-libp2p, both
//! roles, V1 and V1Lazy on both sides, over TCP on 127.0.0.1, with data exchanged
//! after negotiation.

mod common;

use common::tcp_pair;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use multistream_select as theirs;
use weft_mss::{
    dialer_select, dialer_select_simopen, listener_select, Config, NegotiationError, Protocols,
    SimOpenRole, Version,
};

/// Writes `ping`, reads `pong` and checks it.
async fn ping<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    s.write_all(b"ping from the dialer").await.unwrap();
    s.flush().await.unwrap();
    let mut buf = [0u8; 20];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong from listener!!");
}

/// Reads `ping`, writes `pong`.
async fn pong<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let mut buf = [0u8; 20];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping from the dialer");
    s.write_all(b"pong from listener!!").await.unwrap();
    s.flush().await.unwrap();
}

fn their_version(v: Version) -> theirs::Version {
    match v {
        Version::V1 => theirs::Version::V1,
        Version::V1Lazy => theirs::Version::V1Lazy,
    }
}

#[tokio::test]
async fn our_dialer_against_their_listener() {
    for version in [Version::V1, Version::V1Lazy] {
        for proposals in [vec!["/yamux/1.0.0"], vec!["/mplex/6.7.0", "/yamux/1.0.0"]] {
            let (a, b) = tcp_pair().await;
            let listener = tokio::spawn(async move {
                let (p, mut s) = theirs::listener_select_proto(b, ["/noise", "/yamux/1.0.0"])
                    .await
                    .unwrap();
                pong(&mut s).await;
                p
            });
            let (p, mut s) = dialer_select(a, proposals.clone(), version).await.unwrap();
            assert_eq!(p, "/yamux/1.0.0");
            ping(&mut s).await;
            assert_eq!(
                listener.await.unwrap(),
                "/yamux/1.0.0",
                "{version:?} {proposals:?}"
            );
        }
    }
}

#[tokio::test]
async fn their_dialer_against_our_listener() {
    for version in [Version::V1, Version::V1Lazy] {
        for proposals in [vec!["/yamux/1.0.0"], vec!["/mplex/6.7.0", "/yamux/1.0.0"]] {
            let (a, b) = tcp_pair().await;
            let listener = tokio::spawn(async move {
                let supported = Protocols::new()
                    .with_exact("/noise")
                    .with_exact("/yamux/1.0.0");
                let (p, mut s) = listener_select(b, &supported).await.unwrap();
                pong(&mut s).await;
                p
            });
            let (p, mut s) =
                theirs::dialer_select_proto(a, proposals.clone(), their_version(version))
                    .await
                    .unwrap();
            assert_eq!(p, "/yamux/1.0.0");
            ping(&mut s).await;
            assert_eq!(
                listener.await.unwrap(),
                "/yamux/1.0.0",
                "{version:?} {proposals:?}"
            );
        }
    }
}

#[tokio::test]
async fn their_listener_refusing_our_lazy_proposal_is_a_typed_read_error() {
    let (a, b) = tcp_pair().await;
    let listener = tokio::spawn(async move {
        theirs::listener_select_proto(b, ["/other"])
            .await
            .map(|(p, _)| p)
    });
    let (_, mut s) = dialer_select(a, ["/wanted"], Version::V1Lazy)
        .await
        .unwrap();
    let mut buf = [0u8; 8];
    let err = s.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(matches!(
        err.get_ref()
            .and_then(|e| e.downcast_ref::<NegotiationError>()),
        Some(NegotiationError::NoProtocolAccepted { .. })
    ));
    drop(s);
    assert!(listener.await.unwrap().is_err());
}

#[tokio::test]
async fn no_common_protocol_with_their_listener() {
    let (a, b) = tcp_pair().await;
    let listener =
        tokio::spawn(async move { theirs::listener_select_proto(b, ["/c"]).await.is_err() });
    let r = dialer_select(a, ["/a", "/b"], Version::V1).await;
    assert!(
        matches!(r, Err(NegotiationError::NoProtocolAccepted { tried }) if tried == ["/a", "/b"])
    );
    assert!(listener.await.unwrap());
}

#[tokio::test]
async fn their_dialer_refused_by_our_listener() {
    let (a, b) = tcp_pair().await;
    let listener = tokio::spawn(async move {
        let supported = Protocols::new().with_exact("/c");
        listener_select(b, &supported).await.map(|(p, _)| p)
    });
    assert!(
        theirs::dialer_select_proto(a, ["/a", "/b"], theirs::Version::V1)
            .await
            .is_err()
    );
    assert!(matches!(
        listener.await.unwrap(),
        Err(NegotiationError::ConnectionClosed)
    ));
}

#[tokio::test]
async fn our_simopen_dialer_against_their_listener() {
    let (a, b) = tcp_pair().await;
    let listener = tokio::spawn(async move {
        let (p, mut s) = theirs::listener_select_proto(b, ["/noise"]).await.unwrap();
        pong(&mut s).await;
        p
    });
    let matcher = Protocols::new().with_exact("/noise");
    let (role, p, mut s) =
        dialer_select_simopen(a, ["/tls/1.0.0", "/noise"], &matcher, &Config::default())
            .await
            .unwrap();
    assert_eq!((role, p.as_str()), (SimOpenRole::Initiator, "/noise"));
    ping(&mut s).await;
    assert_eq!(listener.await.unwrap(), "/noise");
}
