//! weft QUIC against go-libp2p QUIC (quic-go) and js-libp2p QUIC
//! (`@chainsafe/libp2p-quic`, quinn behind N-API), both directions, with the contract
//! peers in `peers/go` and `peers/js` (`listen --transport quic`): connect (libp2p TLS
//! inside QUIC, both peer ids proven), identify (agent and protocols checked), ping and
//! a 1 MiB `/echo/1.0.0` round trip with half-close. rust-libp2p QUIC has its own file,
//! `quic_rust_libp2p.rs`. Without `go`/`node`/`npm` a test prints `skipped: ...`; under
//! `CI=true` it fails.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use weft_host::{Event, Host, PeerId, Protocol, Stream};
use weft_interop_tests::{
    require_impls, run_dialer, Impl, ListeningPeer, Security, Transport, DEFAULT_ECHO_BYTES,
};

const ECHO: &str = "/echo/1.0.0";
const TIMEOUT: Duration = Duration::from_secs(60);
/// What every QUIC connection reports: libp2p TLS inside QUIC, QUIC's own streams.
const QUIC_SECURITY: &str = "/tls/1.0.0";
const QUIC_MUXER: &str = "quic-v1";

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
        // One byte more than sent, so an over-long echo shows without unbounded reads.
        (&mut r).take(len as u64 + 1).read_to_end(&mut got).await?;
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

/// weft dials `imp` listening on QUIC and runs every check.
async fn weft_dials_over_quic(imp: Impl) {
    if !require_impls(&[imp]) {
        return;
    }
    let peer = ListeningPeer::spawn_on(imp, Transport::Quic, Security::Tls)
        .await
        .unwrap_or_else(|e| panic!("the {imp} peer listens on QUIC: {e}"));
    assert!(
        peer.quic_socket_addr().is_some(),
        "{imp} printed {}, not a /udp/../quic-v1 address",
        peer.addr()
    );
    let host = weft_host();
    let mut events = host.subscribe();
    let run = async {
        let info = host
            .dial(peer.addr())
            .await
            .map_err(|e| format!("dial: {e}"))?;
        if info.peer != peer.peer_id() || info.security != QUIC_SECURITY || info.muxer != QUIC_MUXER
        {
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
        if agent != imp.agent_version() {
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
        panic!(
            "weft -> {imp} over QUIC: {e}\npeer stderr:\n{}",
            peer.stderr()
        );
    }
}

/// `imp` dials weft listening on QUIC and runs every check; its report is checked.
async fn dials_weft_over_quic(imp: Impl) {
    if !require_impls(&[imp]) {
        return;
    }
    let host = weft_host();
    let addrs = host
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("a multiaddr"))
        .await
        .expect("listens on QUIC");
    let addr = addrs[0].clone().with(Protocol::P2p(host.peer_id()));
    // `--security` is the contract's; over QUIC it does not apply.
    let report = run_dialer(imp, &addr, Security::Noise, DEFAULT_ECHO_BYTES)
        .await
        .unwrap_or_else(|e| panic!("{imp} -> weft over QUIC: {e}"));
    assert_eq!(report.remote_peer, host.peer_id());
    assert_eq!(report.agent_version, "weft-interop");
    assert_eq!(report.echo_bytes, DEFAULT_ECHO_BYTES);
    assert_eq!(
        (report.security.as_str(), report.muxer.as_str()),
        (QUIC_SECURITY, QUIC_MUXER),
        "{imp} reports the QUIC connection as {report:?}"
    );
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO] {
        assert!(
            report.protocols.iter().any(|q| q == p),
            "identify lacks {p}: {:?}",
            report.protocols
        );
    }
    assert!(report.rtt_ms.is_finite() && report.rtt_ms >= 0.0);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_dials_go_libp2p_over_quic() {
    weft_dials_over_quic(Impl::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_libp2p_dials_weft_over_quic() {
    dials_weft_over_quic(Impl::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_dials_js_libp2p_over_quic() {
    weft_dials_over_quic(Impl::Js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_libp2p_dials_weft_over_quic() {
    dials_weft_over_quic(Impl::Js).await;
}
