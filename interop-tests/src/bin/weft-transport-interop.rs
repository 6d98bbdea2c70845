//! weft in libp2p/test-plans' transport-interop matrix: one run of one participant,
//! configured by the environment (`transport`, `security`, `muxer`, `is_dialer`, `ip`,
//! `redis_addr`, `test_timeout_seconds`), exactly as test-plans runs every
//! implementation. See `weft_interop_tests::transport_interop` for the contract.
//!
//! Supported: `transport=tcp` with `security=noise|tls` and `muxer=yamux`, and
//! `transport=quic-v1` (weft-transport-quic: libp2p TLS inside QUIC). Anything else is
//! refused with a non-zero exit, which test-plans counts as a failure of that cell.
//! stdout carries only the dialer's JSON line; logs go to stderr (`RUST_LOG`).

use std::sync::Arc;
use std::time::Instant;

use multiaddr::Protocol;
use weft_host::Host;
use weft_interop_tests::transport_interop::{
    publish_listener_addr, publishable_addr, wait_listener_addr, DialerReport, Params, Stack,
    EXIT_FAILURE,
};
use weft_interop_tests::Security;
use weft_upgrader::SecurityUpgrade;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The agent version weft announces in this matrix.
const AGENT_VERSION: &str = "weft-transport-interop";

/// A host for the cell's stack: TCP with exactly the asked security and yamux, or the
/// default host (whose QUIC transport runs its own TLS and streams).
fn build_host(stack: Stack) -> Result<Host, BoxError> {
    let keypair = libp2p_identity::Keypair::generate_ed25519();
    let builder = Host::builder()
        .keypair(keypair.clone())
        .agent_version(AGENT_VERSION);
    let builder = match stack {
        Stack::Tcp { security } => {
            let security: Arc<dyn SecurityUpgrade> = match security {
                Security::Noise => Arc::new(weft_security_noise::Noise::new(&keypair)?),
                Security::Tls => Arc::new(weft_security_tls::TlsUpgrade::new(keypair)),
            };
            builder
                .security(security)
                .muxer(Arc::new(weft_muxer_yamux::Yamux::new()))
        }
        Stack::Quic => builder,
    };
    Ok(builder.build()?)
}

/// Listener: bind, publish the address, serve ping until the runner stops us. Still
/// running at the timeout means the dialer never finished: a failure.
async fn listen(params: &Params) -> Result<(), BoxError> {
    let stack = params.stack()?;
    let host = build_host(stack)?;
    let mut redis = params.redis().await?;
    let bind = stack.listen_addr(params.ip);
    let reported = host.listen(&bind).await?;
    let addr = publishable_addr(&reported)
        .ok_or("the host reported no listen address")?
        .with(Protocol::P2p(host.peer_id()));
    eprintln!("listening on {addr}");
    publish_listener_addr(&mut redis, &params.redis_addr, &addr).await?;
    tokio::time::sleep(params.timeout).await;
    host.shutdown().await;
    Err(format!(
        "still running after the test timeout ({:?})",
        params.timeout
    )
    .into())
}

/// Dialer: take the listener's address, connect, ping once, report.
async fn dial(params: &Params) -> Result<DialerReport, BoxError> {
    let host = build_host(params.stack()?)?;
    let mut redis = params.redis().await?;
    let addr = wait_listener_addr(&mut redis, &params.redis_addr, params.timeout).await?;
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        return Err(format!("listenerAddr {addr} does not end in /p2p/<peer id>").into());
    };
    eprintln!("dialing {addr}");
    let started = Instant::now();
    host.dial(&addr).await?;
    let rtt = host.ping(peer).await?;
    let report = DialerReport::new(started.elapsed(), rtt);
    host.shutdown().await;
    Ok(report)
}

async fn run(params: &Params) -> Result<(), BoxError> {
    if params.is_dialer {
        let report = tokio::time::timeout(params.timeout, dial(params))
            .await
            .map_err(|_| format!("dialer timed out after {:?}", params.timeout))??;
        println!("{}", report.to_json_line());
        Ok(())
    } else {
        listen(params).await
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let result = match Params::from_env() {
        Ok(params) => run(&params).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("weft-transport-interop: {e}");
        std::process::exit(EXIT_FAILURE);
    }
}
