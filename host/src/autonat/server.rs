//! The AutoNAT v2 server in the host: the dial-request handler, and the dial-back
//! through a second host that has no listener.

use crate::admission;
use crate::builder::HostBuilder;
use crate::dial::classify::{leading_ip, AddrClass};
use crate::dial::DialOpts;
use crate::error::BuildError;
use crate::handlers::{Handler, HandlerOptions};
use crate::host::{Host, Inner};
use crate::stream::Stream;
use crate::transport::is_circuit;
use multiaddr::Multiaddr;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::debug;
use weft_autonat::{
    dial_back, DialBackResult, DialBacker, RequestSource, Server, ServerConfig, DIAL_BACK_PROTOCOL,
    DIAL_REQUEST_PROTOCOL,
};

/// Dial-request streams served at once (the server's own limits are lower; this
/// bounds the streams that wait to be rejected).
const MAX_REQUEST_STREAMS: usize = 32;
/// Twice the server's own per-peer limit: a client's next request may come while
/// the handler of its last one is still finishing.
const MAX_REQUEST_STREAMS_PER_PEER: usize = 4;

/// Registers the dial-request handler, with the dial-back host it dials from.
pub(crate) fn install(inner: &Arc<Inner>, config: ServerConfig) -> Result<(), BuildError> {
    let dialer = dial_back_host(inner)?;
    let stopping = dialer.clone();
    let shutdown = inner.shutdown.clone();
    inner.tasks.spawn(async move {
        shutdown.cancelled().await;
        stopping.shutdown().await;
    });
    let server = Arc::new(Server::new(config));
    let backer = Arc::new(HostDialBacker {
        main: Arc::downgrade(inner),
        dialer,
    });
    let weak = Arc::downgrade(inner);
    let handler: Handler = Arc::new(move |stream: Stream| {
        let (weak, server, backer) = (weak.clone(), server.clone(), backer.clone());
        Box::pin(async move { serve(weak, server, backer, stream).await })
    });
    let options = HandlerOptions::default()
        .with_max_inbound_streams(MAX_REQUEST_STREAMS)
        .with_max_inbound_streams_per_peer(Some(MAX_REQUEST_STREAMS_PER_PEER));
    inner.add_exact_handler(DIAL_REQUEST_PROTOCOL.to_string(), handler, options);
    Ok(())
}

/// The host dial-backs leave from: a fresh identity, the default transports and no
/// listener (so every dial-back leaves from a fresh port), this host's dial
/// configuration (its classifier) and resource manager.
fn dial_back_host(inner: &Inner) -> Result<Host, BuildError> {
    let builder = HostBuilder::new()
        .resource_manager(inner.resources.clone())
        .dial_config(inner.dialer.config.clone())
        .agent_version(format!(
            "{} (autonat dial-back)",
            inner.config.agent_version
        ));
    #[cfg(feature = "relay")]
    let builder = builder.relay_client(false);
    builder.build()
}

async fn serve(
    weak: Weak<Inner>,
    server: Arc<Server>,
    backer: Arc<HostDialBacker>,
    stream: Stream,
) {
    let Some(inner) = weak.upgrade() else { return };
    let Some(conn) = inner.connection(&stream.connection()) else {
        return debug!(peer = %stream.peer(), "dial request of a connection that is gone");
    };
    let source = RequestSource {
        peer: stream.peer(),
        observed_ip: leading_ip(&conn.remote_addr),
        relayed: is_circuit(&conn.remote_addr),
        budget: admission::budget(&conn.scope),
    };
    drop((inner, conn));
    match server.serve(Box::new(stream), source, &*backer).await {
        Ok(outcome) => debug!(?outcome, "dial request served"),
        Err(e) => debug!(error = %e, "dial request ended with an error"),
    }
}

/// Dials back through the dial-back host.
struct HostDialBacker {
    main: Weak<Inner>,
    dialer: Host,
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

impl HostDialBacker {
    async fn deliver(&self, addr: &Multiaddr, nonce: u64, timeout: Duration) -> DialBackResult {
        // A connection of its own to this very address: one the dial-back host has
        // to the client already (a dial-back of another address, over another
        // transport, in flight) proves nothing about this one.
        let opts = DialOpts::new()
            .with_ignore_backoff(true)
            .with_new_connection(true);
        let conn = match self.dialer.dial_with(addr, opts).await {
            Ok(c) => c,
            Err(e) => return DialBackResult::DialFailed(e.to_string()),
        };
        let sent = async {
            // On this connection: another dial-back to the same client may close
            // its own meanwhile.
            let dialed = self
                .dialer
                .inner
                .connection(&conn.id)
                .ok_or_else(|| "the dial-back connection closed".to_owned())?;
            let mut stream = self
                .dialer
                .inner
                .open_stream_on(&dialed, &[DIAL_BACK_PROTOCOL])
                .await
                .map_err(|e| e.to_string())?;
            dial_back::send_nonce(&mut stream, nonce, timeout)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        self.dialer.close(conn.id).await;
        match sent {
            Ok(()) => DialBackResult::Delivered,
            Err(e) => DialBackResult::DialBackFailed(e),
        }
    }
}

#[async_trait::async_trait]
impl DialBacker for HostDialBacker {
    fn can_dial(&self, addr: &Multiaddr) -> bool {
        let Some(main) = self.main.upgrade() else {
            return false;
        };
        let Some(ip) = leading_ip(addr) else {
            return false;
        };
        // A public address (as our classifier says), of a transport we have, of an
        // IP family we listen on.
        main.dialer.config.classifier.addr(addr) == AddrClass::Public
            && self
                .dialer
                .inner
                .transports
                .iter()
                .any(|t| t.can_dial(addr))
            && main
                .listen_addrs()
                .iter()
                .filter_map(leading_ip)
                .any(|ours| same_family(ours, ip))
    }

    async fn dial_back(&self, addr: &Multiaddr, nonce: u64, timeout: Duration) -> DialBackResult {
        match tokio::time::timeout(timeout, self.deliver(addr, nonce, timeout)).await {
            Ok(result) => result,
            Err(_) => DialBackResult::DialFailed(format!("timed out after {timeout:?}")),
        }
    }
}
