//! weft's receiver-driven yamux windows against real peers across a 60 ms delaying
//! relay.
//!
//! weft dials a go-libp2p, js-libp2p or rust-libp2p peer through a [`DelayRelay`]
//! and, once yamux's pings have measured the round trip, writes 8 MiB to the peer's
//! echo handler while reading the echo back. As weft's reader drains full windows
//! within a round trip, the muxer grants the peer more window (reserved from the
//! budget) and holds what arrives beyond yamux's own 256 KiB until it is read; the test
//! checks every byte, so held bytes are delivered in order and the standard window
//! updates weft sends are understood by every peer. (A stream nobody reads earns no
//! more than 256 KiB: `muxer-yamux/tests/flow_control.rs` and the hostile-peer suite
//! hold that.)

use futures::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::Duration;
use weft_host::{Event, Host, Keypair};
use weft_interop_tests::{require_impls, DelayRelay, Impl, ListeningPeer, Security};

const ECHO: &str = "/echo/1.0.0";
const ONE_WAY: Duration = Duration::from_millis(30);
const BYTES: usize = 8 << 20;

fn weft_host() -> Host {
    let keypair = Keypair::generate_ed25519();
    let noise = Arc::new(weft_security_noise::Noise::new(&keypair).unwrap());
    Host::builder()
        .keypair(keypair)
        .security(noise)
        .agent_version("weft-interop")
        .build()
        .unwrap()
}

async fn echo_across_the_relay(imp: Impl) -> Result<(), String> {
    let peer = ListeningPeer::spawn(imp, Security::Noise)
        .await
        .map_err(|e| format!("listener: {e}"))?;
    let relay = DelayRelay::start(peer.socket_addr(), ONE_WAY)
        .await
        .map_err(|e| format!("relay: {e}"))?;
    let host = weft_host();
    let mut events = host.subscribe();
    let run = async {
        host.dial(&peer.addr_via(relay.local_addr()))
            .await
            .map_err(|e| format!("dial: {e}"))?;
        // Identify and a ping take several round trips: yamux's own first ping has
        // been answered by then, so the boost knows the round-trip time.
        loop {
            match events.recv().await {
                Ok(Event::PeerIdentified { peer: p, .. }) if p == peer.peer_id() => break,
                Ok(_) | Err(weft_host::RecvError::Lagged(_)) => continue,
                Err(e) => return Err(format!("events: {e}")),
            }
        }
        let rtt = host
            .ping(peer.peer_id())
            .await
            .map_err(|e| format!("ping: {e}"))?;
        if rtt < 2 * ONE_WAY {
            return Err(format!("ping {rtt:?} does not cross the relay"));
        }
        let data: Vec<u8> = (0..BYTES).map(|i| (i % 253) as u8).collect();
        let stream = host
            .new_stream(peer.peer_id(), &[ECHO])
            .await
            .map_err(|e| format!("open echo: {e}"))?;
        let (mut r, mut w) = stream.split();
        let write = async {
            w.write_all(&data).await?;
            w.close().await
        };
        let read = async {
            let mut got = Vec::with_capacity(BYTES);
            r.read_to_end(&mut got).await.map(|_| got)
        };
        let (written, got) = tokio::time::timeout(Duration::from_secs(30), async {
            futures::join!(write, read)
        })
        .await
        .map_err(|_| "echoing 8 MiB across the relay stalled".to_string())?;
        written.map_err(|e| format!("echo write: {e}"))?;
        let got = got.map_err(|e| format!("echo read: {e}"))?;
        if got != data {
            return Err(format!(
                "the echo returned {} bytes that differ from the {BYTES} sent",
                got.len()
            ));
        }
        Ok(())
    };
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    host.shutdown().await;
    result.map_err(|e| format!("{imp}: {e}\npeer stderr:\n{}", peer.stderr()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_libp2p_echoes_8_mib_across_the_long_link() {
    if require_impls(&[Impl::Go]) {
        echo_across_the_relay(Impl::Go).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_libp2p_echoes_8_mib_across_the_long_link() {
    if require_impls(&[Impl::Js]) {
        echo_across_the_relay(Impl::Js).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_echoes_8_mib_across_the_long_link() {
    if require_impls(&[Impl::Rust]) {
        echo_across_the_relay(Impl::Rust).await.unwrap();
    }
}
