//! weft QUIC against rust-libp2p QUIC (libp2p-quic on quinn), both directions:
//! connect (libp2p TLS inside QUIC, both peer ids proven), identify, ping and a 1 MiB
//! `/echo/1.0.0` round trip with half-close, with the contract peer in `peers/rust`.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::time::Duration;
use weft_host::{Event, Host, PeerId, Protocol, Stream};
use weft_interop_tests::{
    prepare_async, run_dialer, Impl, ListeningPeer, Security, DEFAULT_ECHO_BYTES,
};

const ECHO: &str = "/echo/1.0.0";
const TIMEOUT: Duration = Duration::from_secs(60);

/// A default weft host (TCP and QUIC) that serves `/echo/1.0.0`.
fn weft_host() -> Host {
    let host = Host::builder()
        .agent_version("weft-interop")
        .build()
        .expect("builds");
    host.set_handler(ECHO, |mut s: Stream| async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let _ = s.close().await;
    });
    host
}

/// Echoes `len` random bytes through the peer, writing and reading at once.
async fn echo_through(host: &Host, peer: PeerId, len: usize) -> Result<(), String> {
    let data: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    let stream = host
        .new_stream(peer, &[ECHO])
        .await
        .map_err(|e| format!("open echo: {e}"))?;
    let (mut r, mut w) = stream.split();
    let send = async {
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk).await?;
        }
        w.close().await
    };
    let recv = async {
        let mut got = Vec::with_capacity(len);
        r.read_to_end(&mut got).await?;
        Ok::<_, std::io::Error>(got)
    };
    let (sent, got) = futures::join!(send, recv);
    sent.map_err(|e| format!("echo write: {e}"))?;
    let got = got.map_err(|e| format!("echo read: {e}"))?;
    if got != data {
        return Err(format!(
            "echo returned {} bytes, not the {len} sent",
            got.len()
        ));
    }
    Ok(())
}

fn is_quic(addr: &weft_host::Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_dials_rust_libp2p_over_quic() {
    let command = prepare_async(Impl::Rust)
        .await
        .expect("builds the rust peer");
    let mut args = command.listen_args(Security::Tls, Ipv4Addr::LOCALHOST, 0);
    args.extend(["--transport", "quic"].map(OsString::from));
    let peer = ListeningPeer::spawn_program(&command.label, &command.program, args)
        .await
        .expect("the rust-libp2p peer listens");
    assert!(is_quic(peer.addr()), "{}", peer.addr());

    let host = weft_host();
    let mut events = host.subscribe();
    let run = async {
        let info = host
            .dial(peer.addr())
            .await
            .map_err(|e| format!("dial: {e}"))?;
        if info.peer != peer.peer_id() || info.security != "/tls/1.0.0" || info.muxer != "quic-v1" {
            return Err(format!("connected as {info:?}"));
        }
        let (agent, protocols) = loop {
            match events.recv().await {
                Ok(Event::PeerIdentified {
                    peer: p,
                    agent_version,
                    protocols,
                    ..
                }) if p == peer.peer_id() => break (agent_version, protocols),
                Ok(_) | Err(weft_host::RecvError::Lagged(_)) => continue,
                Err(e) => return Err(format!("events: {e}")),
            }
        };
        if agent != Impl::Rust.agent_version() {
            return Err(format!("identify agent {agent:?}"));
        }
        for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO] {
            if !protocols.iter().any(|q| q == p) {
                return Err(format!("identify lacks {p}: {protocols:?}"));
            }
        }
        host.ping(peer.peer_id())
            .await
            .map_err(|e| format!("ping: {e}"))?;
        echo_through(&host, peer.peer_id(), DEFAULT_ECHO_BYTES as usize).await
    };
    let result = tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    host.shutdown().await;
    if let Err(e) = result {
        panic!("{e}\npeer stderr:\n{}", peer.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_dials_weft_over_quic() {
    let host = weft_host();
    let addrs = host
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("a multiaddr"))
        .await
        .expect("listens on QUIC");
    let addr = addrs[0].clone().with(Protocol::P2p(host.peer_id()));
    let report = run_dialer(Impl::Rust, &addr, Security::Tls, DEFAULT_ECHO_BYTES)
        .await
        .expect("the rust-libp2p peer dials, identifies, pings and echoes");
    assert_eq!(report.remote_peer, host.peer_id());
    assert_eq!(report.agent_version, "weft-interop");
    assert_eq!(report.echo_bytes, DEFAULT_ECHO_BYTES);
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO] {
        assert!(
            report.protocols.iter().any(|q| q == p),
            "identify lacks {p}"
        );
    }
    assert!(report.rtt_ms.is_finite() && report.rtt_ms >= 0.0);
    host.shutdown().await;
}
