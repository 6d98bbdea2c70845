//! Swapping implementations is real: a security protocol written outside the weft
//! crates (`/plaintext/2.0.0`, in `support/plaintext.rs`) and a user-defined muxer
//! choice plug into the host through the public traits alone.

#[path = "support/plaintext.rs"]
mod plaintext;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use weft_host::{Event, Host, Keypair, Protocol};
use weft_upgrader::{BoxedIo, Muxed, MuxerError, Role, StreamMuxer};

/// A muxer defined by the user: yamux's wire format under a protocol id of our own.
struct RenamedYamux(weft_muxer_yamux::Yamux);

impl StreamMuxer for RenamedYamux {
    fn protocol_id(&self) -> &str {
        "/my-muxer/1.0.0"
    }

    fn upgrade(&self, io: BoxedIo, role: Role) -> Result<Muxed, MuxerError> {
        self.0.upgrade(io, role)
    }
}

fn host(keypair: Keypair) -> Host {
    Host::builder()
        .security(Arc::new(plaintext::Plaintext::new(&keypair)))
        .muxer(Arc::new(RenamedYamux(weft_muxer_yamux::Yamux::new())))
        .keypair(keypair)
        .build()
        .unwrap()
}

#[tokio::test]
async fn plaintext_security_and_a_custom_muxer_plug_in() {
    let server = host(Keypair::generate_ed25519());
    server.set_handler("/echo/1.0.0", |mut s| async move {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let _ = s.write_all(&buf).await;
        let _ = s.close().await;
    });
    let addrs = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let client = host(Keypair::generate_ed25519());
    let mut events = client.subscribe();
    let info = client
        .dial(&addrs[0].clone().with(Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    assert_eq!(info.security, "/plaintext/2.0.0");
    assert_eq!(info.muxer, "/my-muxer/1.0.0");
    let mut s = client
        .new_stream(server.peer_id(), &["/echo/1.0.0"])
        .await
        .unwrap();
    s.write_all(b"plain").await.unwrap();
    s.close().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"plain");
    loop {
        if let Ok(Event::PeerIdentified { peer, .. }) = events.recv().await {
            assert_eq!(peer, server.peer_id());
            break;
        }
    }
    client.shutdown().await;
    server.shutdown().await;
}
