//! weft under test: `weft_host::Host` with one security protocol, yamux, no connection
//! limits (rust-libp2p's swarm has none by default either).

use crate::stack::{BenchResult, BoxedStream, Node, Security, Stack, Target, ECHO};
use crate::wire;
use futures::future::{BoxFuture, FutureExt};
use std::sync::{Arc, OnceLock};
use weft_host::{Host, PeerId};
use weft_muxer_yamux::{Yamux, YamuxConfig};

/// The yamux configuration weft runs with (set once from the command line).
static YAMUX: OnceLock<YamuxConfig> = OnceLock::new();

/// The QUIC configuration weft runs with (set once from the command line; default:
/// weft-transport-quic's defaults).
static QUIC: OnceLock<weft_transport_quic::Config> = OnceLock::new();

/// Sets the QUIC configuration of every weft host built from now on.
pub fn set_quic_config(config: weft_transport_quic::Config) -> BenchResult<()> {
    QUIC.set(config)
        .map_err(|_| "weft QUIC configuration set twice".into())
}

/// Sets the yamux configuration of every weft host built from now on.
pub fn set_yamux_config(config: YamuxConfig) -> BenchResult<()> {
    config.validate()?;
    YAMUX
        .set(config)
        .map_err(|_| "weft yamux configuration set twice".into())
}

/// weft.
pub struct Weft;

/// A weft host used as a client (or a server handle).
#[derive(Clone)]
pub struct WeftNode {
    host: Host,
}

fn build(security: Security) -> BenchResult<Host> {
    let keypair = weft_host::Keypair::generate_ed25519();
    let secure: Arc<dyn weft_upgrader::SecurityUpgrade> = match security {
        Security::Noise => Arc::new(weft_security_noise::Noise::new(&keypair)?),
        Security::Tls | Security::Quic => {
            Arc::new(weft_security_tls::TlsUpgrade::new(keypair.clone()))
        }
    };
    let yamux = Yamux::with_config(YAMUX.get().cloned().unwrap_or_default())?;
    // QUIC: the host's QUIC transport, with its default configuration unless the
    // command line changed it (the TCP security and muxer are then unused).
    let mut builder = Host::builder();
    if let (Security::Quic, Some(config)) = (security, QUIC.get()) {
        let quic =
            weft_host::transport::quic::QuicTransport::with_config(&keypair, config.clone())?;
        builder = builder.transport(Arc::new(quic));
    }
    let host = builder
        .keypair(keypair)
        .security(secure)
        .muxer(Arc::new(yamux))
        .connection_policy(Arc::new(weft_connmgr::NoLimits))
        .build()?;
    Ok(host)
}

impl Stack for Weft {
    type Node = WeftNode;
    const NAME: &'static str = "weft";

    async fn server(security: Security) -> BenchResult<(WeftNode, Target)> {
        let host = build(security)?;
        host.enable_perf();
        host.set_handler(ECHO, |mut stream| async move {
            let _ = wire::serve_echo(&mut stream).await;
        });
        let addrs = host.listen(&security.listen_addr()).await?;
        let addr = addrs.first().ok_or("weft listened on no address")?;
        let target = Target::at(addr, host.peer_id())?;
        Ok((WeftNode { host }, target))
    }

    async fn client(security: Security) -> BenchResult<WeftNode> {
        Ok(WeftNode {
            host: build(security)?,
        })
    }
}

impl WeftNode {
    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }
}

impl Node for WeftNode {
    type Conn = PeerId;

    fn dial(&self, target: Target) -> BoxFuture<'static, BenchResult<PeerId>> {
        let host = self.host.clone();
        async move {
            // Without `/p2p/..` every dial makes a new connection.
            let info = host.dial(&target.multiaddr()).await?;
            if info.peer != target.peer {
                return Err(format!("dialed {}, reached {}", target.peer, info.peer).into());
            }
            Ok(info.peer)
        }
        .boxed()
    }

    fn open(
        &self,
        conn: &PeerId,
        protocol: &'static str,
    ) -> BoxFuture<'static, BenchResult<BoxedStream>> {
        let host = self.host.clone();
        let peer = *conn;
        async move {
            // weft opens on the newest usable connection to the peer.
            let stream = host.new_stream(peer, &[protocol]).await?;
            Ok(Box::new(stream) as BoxedStream)
        }
        .boxed()
    }

    fn close(&self, conn: PeerId) -> BoxFuture<'static, ()> {
        let host = self.host.clone();
        async move { host.disconnect(&conn).await }.boxed()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let host = self.host.clone();
        async move { host.shutdown().await }.boxed()
    }
}
