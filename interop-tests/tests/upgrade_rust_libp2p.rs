//! weft's upgrader against rust-libp2p's own upgrade stack (`libp2p` 0.57:
//! TCP + multistream-select + Noise or TLS + yamux) over real TCP on 127.0.0.1, in
//! both roles: rust-libp2p dials weft, weft dials rust-libp2p, and the dialer plays
//! the responder (rust-libp2p's role override, DCUtR style). Streams opened from
//! each side exchange and echo data.

#[path = "upgrade_support.rs"]
mod support;

use futures::channel::oneshot;
use futures::io::AsyncWriteExt;
use futures::StreamExt;
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, PortUse, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::core::Endpoint;
use libp2p::{Multiaddr, PeerId, Transport};
use libp2p_identity::Keypair;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use support::{boxed, pattern, read_all, serve_echo, upgrader, Sec};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use weft_upgrader::{Connection, MuxedConnection, Role};

fn rust_transport(
    sec: Sec,
    keypair: &Keypair,
    version: Version,
) -> Boxed<(PeerId, StreamMuxerBox)> {
    let tcp = libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
        .upgrade(version);
    match sec {
        Sec::Noise => tcp
            .authenticate(libp2p::noise::Config::new(keypair).unwrap())
            .multiplex(libp2p::yamux::Config::default())
            .timeout(Duration::from_secs(10))
            .boxed(),
        Sec::Tls => tcp
            .authenticate(libp2p::tls::Config::new(keypair).unwrap())
            .multiplex(libp2p::yamux::Config::default())
            .timeout(Duration::from_secs(10))
            .boxed(),
    }
}

/// A rust-libp2p connection driven on its own task: inbound streams are echoed,
/// outbound streams are handed out on request.
struct RustConnection {
    open: mpsc::UnboundedSender<oneshot::Sender<SubstreamBox>>,
}

impl RustConnection {
    fn drive(mut muxer: StreamMuxerBox) -> Self {
        let (open, mut requests) = mpsc::unbounded_channel::<oneshot::Sender<SubstreamBox>>();
        tokio::spawn(async move {
            let mut waiting = VecDeque::new();
            futures::future::poll_fn(|cx| loop {
                let mut progress = false;
                match muxer.poll_unpin(cx) {
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
                while let Poll::Ready(Some(reply)) = requests.poll_recv(cx) {
                    waiting.push_back(reply);
                }
                if !waiting.is_empty() {
                    match muxer.poll_outbound_unpin(cx) {
                        Poll::Ready(Ok(stream)) => {
                            if let Some(reply) = waiting.pop_front() {
                                let _ = reply.send(stream);
                            }
                            progress = true;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                }
                match muxer.poll_inbound_unpin(cx) {
                    Poll::Ready(Ok(mut stream)) => {
                        tokio::spawn(async move {
                            if let Ok(data) = read_all(&mut stream, 1 << 22).await {
                                let _ = stream.write_all(&data).await;
                                let _ = stream.close().await;
                            }
                        });
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
                if !progress {
                    return Poll::Pending;
                }
            })
            .await;
        });
        RustConnection { open }
    }

    async fn open_stream(&self) -> SubstreamBox {
        let (reply, stream) = oneshot::channel();
        self.open.send(reply).unwrap();
        stream.await.expect("rust-libp2p connection ended")
    }
}

/// Sizes of the streams each side opens: many small ones and one of 1 MiB.
fn sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..20).map(|i| 100 + i * 997).collect();
    sizes.push(1 << 20);
    sizes
}

/// Streams from weft to rust-libp2p and from rust-libp2p to weft, all at once.
async fn exchange(weft: Connection, rust: RustConnection) {
    tokio::spawn(weft.driver);
    let echo = serve_echo(weft.muxed.clone());
    let weft_muxed: Arc<dyn MuxedConnection> = weft.muxed.clone();
    let from_weft = sizes().into_iter().enumerate().map(|(i, len)| {
        let muxed = weft_muxed.clone();
        async move {
            let data = pattern(len, i as u64);
            let mut stream = muxed.open_stream().await.unwrap();
            stream.write_all(&data).await.unwrap();
            stream.close().await.unwrap();
            let echoed = read_all(&mut stream, len).await.unwrap();
            assert!(echoed == data, "weft-opened stream {i}: echo differs");
        }
    });
    let from_rust = sizes().into_iter().enumerate().map(|(i, len)| {
        let rust = &rust;
        async move {
            let data = pattern(len, 100 + i as u64);
            let mut stream = rust.open_stream().await;
            stream.write_all(&data).await.unwrap();
            stream.close().await.unwrap();
            let echoed = read_all(&mut stream, len).await.unwrap();
            assert!(echoed == data, "rust-opened stream {i}: echo differs");
        }
    });
    tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join(
            futures::future::join_all(from_weft),
            futures::future::join_all(from_rust),
        ),
    )
    .await
    .expect("streams timed out");
    weft_muxed.close().await.unwrap();
    echo.abort();
}

fn tcp_addr(listener: &TcpListener) -> Multiaddr {
    let addr = listener.local_addr().unwrap();
    format!("/ip4/127.0.0.1/tcp/{}", addr.port())
        .parse()
        .unwrap()
}

/// rust-libp2p dials weft. With `rust_role = Listener`, rust-libp2p dials but plays
/// the responder, and weft, which accepted, plays the initiator.
async fn rust_dials_weft(sec: Sec, version: Version, rust_role: Endpoint, weft_inline: bool) {
    let (weft_key, rust_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let weft = upgrader(sec, &weft_key, weft_inline, true);
    let mut rust = rust_transport(sec, &rust_key, version);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dial = rust
        .dial(
            tcp_addr(&listener),
            DialOpts {
                role: rust_role,
                port_use: PortUse::New,
            },
        )
        .unwrap();
    let weft_role = match rust_role {
        Endpoint::Dialer => Role::Responder,
        Endpoint::Listener => Role::Initiator,
    };
    let rust_peer = rust_key.public().to_peer_id();
    // rust-libp2p's muxer must be polled as soon as its upgrade returns: with a lazy
    // muxer proposal, weft's side only completes once that proposal is sent.
    let dial = async {
        let (peer, muxer) = dial.await?;
        Ok::<_, std::io::Error>((peer, RustConnection::drive(muxer)))
    };
    let (rust_side, weft_side) = tokio::join!(dial, async {
        let (tcp, _) = listener.accept().await.unwrap();
        weft.upgrade(boxed(tcp), weft_role, Some(rust_peer)).await
    });
    let (peer, rust_side) = rust_side.unwrap_or_else(|e| panic!("rust-libp2p side: {e}"));
    let weft_side =
        weft_side.unwrap_or_else(|e| panic!("weft side ({version:?}, inline {weft_inline}): {e}"));
    assert_eq!(peer, weft_key.public().to_peer_id());
    assert_eq!(weft_side.remote_peer, rust_peer);
    assert_eq!(weft_side.role, weft_role);
    assert_eq!(weft_side.muxer_protocol, "/yamux/1.0.0");
    exchange(weft_side, rust_side).await;
}

/// weft dials rust-libp2p's listener.
async fn weft_dials_rust(sec: Sec, weft_lazy: bool, weft_inline: bool) {
    let (weft_key, rust_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let weft = upgrader(sec, &weft_key, weft_inline, weft_lazy);
    let mut rust = rust_transport(sec, &rust_key, Version::V1);
    rust.listen_on(ListenerId::next(), "/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = match rust.next().await.expect("transport ended") {
        TransportEvent::NewAddress { listen_addr, .. } => listen_addr,
        other => panic!("unexpected event before listening: {other:?}"),
    };
    let port = match addr.iter().nth(1) {
        Some(libp2p::multiaddr::Protocol::Tcp(port)) => port,
        _ => panic!("not a TCP address: {addr}"),
    };
    let rust_peer = rust_key.public().to_peer_id();
    let (rust_side, weft_side) = tokio::join!(
        async {
            loop {
                if let TransportEvent::Incoming { upgrade, .. } =
                    rust.next().await.expect("transport ended")
                {
                    return upgrade.await;
                }
            }
        },
        async {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            weft.upgrade_outbound(boxed(tcp), Some(rust_peer)).await
        }
    );
    let (peer, muxer) = rust_side.unwrap_or_else(|e| panic!("rust-libp2p side: {e}"));
    let weft_side = weft_side.unwrap_or_else(|e| panic!("weft side: {e}"));
    assert_eq!(peer, weft_key.public().to_peer_id());
    assert_eq!(weft_side.remote_peer, rust_peer);
    assert_eq!(weft_side.role, Role::Initiator);
    exchange(weft_side, RustConnection::drive(muxer)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_dials_weft_noise() {
    for version in [Version::V1, Version::V1Lazy] {
        for inline in [true, false] {
            rust_dials_weft(Sec::Noise, version, Endpoint::Dialer, inline).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_dials_weft_tls() {
    for version in [Version::V1, Version::V1Lazy] {
        for inline in [true, false] {
            rust_dials_weft(Sec::Tls, version, Endpoint::Dialer, inline).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_dials_rust_noise() {
    for lazy in [true, false] {
        for inline in [true, false] {
            weft_dials_rust(Sec::Noise, lazy, inline).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_dials_rust_tls() {
    for lazy in [true, false] {
        for inline in [true, false] {
            weft_dials_rust(Sec::Tls, lazy, inline).await;
        }
    }
}

/// rust-libp2p dials but plays the responder (`Endpoint::Listener` role override);
/// weft, which accepted the TCP connection, upgrades as the initiator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_roles_with_rust_role_override() {
    for sec in [Sec::Noise, Sec::Tls] {
        rust_dials_weft(sec, Version::V1, Endpoint::Listener, true).await;
    }
}
