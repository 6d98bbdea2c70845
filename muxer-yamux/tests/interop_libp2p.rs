//! weft-yamux against rust-libp2p's `libp2p-yamux` 0.48 over real TCP, both roles:
//! streams opened from either side echo data.

mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use support::libp2p_peer::Libp2pPeer;
use support::*;
use weft_muxer_yamux::YamuxConfig;
use weft_upgrader::Role;

/// Echoes a libp2p stream: read to EOF, write it back, close.
async fn libp2p_echo(mut stream: libp2p_yamux::Stream) {
    let mut data = Vec::new();
    stream.read_to_end(&mut data).await.unwrap();
    stream.write_all(&data).await.unwrap();
    stream.close().await.unwrap();
}

/// Writes, half-closes and reads the echo on a libp2p stream.
async fn libp2p_roundtrip(mut stream: libp2p_yamux::Stream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.unwrap();
    stream.close().await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    out
}

async fn interop(weft_role: Role) {
    let (a, b) = tcp_pair().await;
    let (weft_tcp, libp2p_tcp) = match weft_role {
        Role::Initiator => (a, b),
        Role::Responder => (b, a),
    };
    let (weft, _driver) = weft_peer(weft_tcp, weft_role, YamuxConfig::default());
    let mut libp2p = Libp2pPeer::spawn(libp2p_tcp, weft_role == Role::Responder).await;
    spawn_echo_server(weft.clone());

    // weft opens, libp2p echoes.
    let weft_side = async {
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let stream = weft.open_stream().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let data = pattern(100_000 + usize::from(i) * 1000, i);
                assert_eq!(echo_roundtrip(stream, &data).await.unwrap(), data);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    };
    let libp2p_accepts = async {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let stream = libp2p.accept().await.expect("inbound stream");
            tasks.push(tokio::spawn(libp2p_echo(stream)));
        }
        for task in tasks {
            task.await.unwrap();
        }
        libp2p
    };
    let ((), mut libp2p) = within(20, "weft-opened streams", async {
        tokio::join!(weft_side, libp2p_accepts)
    })
    .await;

    // libp2p opens, weft echoes.
    within(20, "libp2p-opened streams", async {
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let stream = libp2p.open().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let data = pattern(100_000 + usize::from(i) * 1000, i.wrapping_add(50));
                assert_eq!(libp2p_roundtrip(stream, &data).await, data);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;

    // A graceful close from weft reaches libp2p: its streams end.
    within(5, "close", weft.close()).await.unwrap();
    assert!(libp2p.open().await.is_err() || libp2p.accept().await.is_none());
}

#[tokio::test]
async fn weft_initiator_libp2p_responder() {
    interop(Role::Initiator).await;
}

#[tokio::test]
async fn libp2p_initiator_weft_responder() {
    interop(Role::Responder).await;
}

#[tokio::test]
async fn libp2p_sees_weft_reset_as_a_failed_write() {
    let (a, b) = tcp_pair().await;
    let (weft, _driver) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let mut libp2p = Libp2pPeer::spawn(b, false).await;
    let mut stream = weft.open_stream().await.unwrap();
    stream.write_all(b"x").await.unwrap();
    stream.close().await.unwrap();
    let mut inbound = within(5, "accept", libp2p.accept()).await.unwrap();
    let mut request = Vec::new();
    inbound.read_to_end(&mut request).await.unwrap();
    // After our half-close yamux alone would send nothing; our reset sends RST.
    stream.reset();
    let err = within(5, "libp2p write after reset", async {
        loop {
            if let Err(e) = inbound.write_all(&[1; 1024]).await {
                return e;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(err.kind(), std::io::ErrorKind::WriteZero, "{err}");
}
