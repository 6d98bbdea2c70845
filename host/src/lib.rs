//! A thin libp2p host.
//!
//! `weft-host` wires weft's crates together: transports (TCP, in-memory), the
//! upgrader (security, then a muxer), a peerstore and a connection policy. On top it
//! routes inbound streams to handlers registered by exact protocol id or by a match
//! function, opens outbound streams, reports lifecycle events, and speaks the
//! protocols every libp2p host speaks: identify (with push) and ping.
//!
//! Every connection, stream and buffer is charged to a resource manager
//! ([`HostBuilder::resource_manager`], default [`Limits::auto`]); the default
//! connection policy is derived from its limits
//! ([`connection_manager_config_for`]). Denials are typed errors naming their scope
//! ([`DialError::Resource`], [`StreamError::Resource`]); an inbound stream over a
//! limit or its handler's per-peer slot is refused with `na`; a full pending-inbound
//! limit evicts the least advanced handshake instead of refusing the newcomer.
//!
//! Dialing ([`dial`]) ranks a peer's addresses, schedules the attempts (Happy
//! Eyeballs v2), resolves `/dns*` and `/dnsaddr` (feature `dns`) and backs off peers
//! that keep failing.
//!
//! Each implementation sits behind a feature flag (`tcp`, `noise`, `tls`, `yamux`,
//! `dns`, `redb`), with all but `redb` on by default. The `metrics-hook` feature (off by
//! default) adds `HostBuilder::observer`: a synchronous `Observer` that is told
//! about connections, dials, streams (with their bytes), identify and ping, which is
//! what `weft-metrics` counts with; without the feature the hook points compile to
//! nothing. The `relay` feature (off by default) adds circuit relay v2 (module `relay`):
//! dialing and listening on `/p2p-circuit` addresses, and an opt-in relay server.
//! The `autonat` feature (off by default) adds AutoNAT v2 (module `autonat`): a
//! client that gives each of our addresses a verdict, and an opt-in server.
//! The `dcutr` feature (off by default; it turns `relay` on) adds hole punching over
//! relayed connections (module `dcutr`), reported with `Event::HolePunch`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! let server = weft_host::Host::builder().build()?;
//! server.set_handler("/echo/1.0.0", |mut stream| async move {
//!     let mut buf = Vec::new();
//!     if stream.read_to_end(&mut buf).await.is_ok() {
//!         let _ = stream.write_all(&buf).await;
//!         let _ = stream.close().await;
//!     }
//! });
//! let addrs = server.listen(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
//!
//! let client = weft_host::Host::builder().build()?;
//! let addr = addrs[0].clone().with(multiaddr::Protocol::P2p(server.peer_id()));
//! client.dial(&addr).await?;
//! let mut stream = client.new_stream(server.peer_id(), &["/echo/1.0.0"]).await?;
//! stream.write_all(b"hello").await?;
//! stream.close().await?;
//! let mut echoed = Vec::new();
//! stream.read_to_end(&mut echoed).await?;
//! assert_eq!(echoed, b"hello");
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod admission;
#[cfg(feature = "autonat")]
pub mod autonat;
mod book;
mod builder;
mod config;
mod conn;
#[cfg(feature = "dcutr")]
pub mod dcutr;
pub mod dial;
mod error;
mod events;
mod handlers;
mod host;
pub mod identify;
mod inbound_roles;
mod interfaces;
mod listeners;
mod observed;
mod observer;
pub mod perf;
pub mod ping;
mod registry;
#[cfg(feature = "relay")]
pub mod relay;
mod routing;
pub mod store_writer;
mod stream;
pub mod transport;

pub use builder::{
    connection_manager_config_for, connection_manager_for, default_connection_manager,
    default_policy, HostBuilder,
};
pub use config::HostConfig;
pub use conn::ConnectionInfo;
pub use dial::{DialConfig, DialOpts};
pub use error::{BuildError, DialError, ListenError, StreamError};
pub use events::Event;
pub use handlers::{HandlerOptions, MatchFn, DEFAULT_MAX_INBOUND_STREAMS_PER_PEER};
pub use host::Host;
#[cfg(feature = "metrics-hook")]
pub use observer::{Observer, StreamInfo, StreamMeter};
pub use stream::Stream;

pub use libp2p_identity::{Keypair, PeerId, PublicKey};
pub use multiaddr::{Multiaddr, Protocol};
pub use tokio::sync::broadcast::error::RecvError;
pub use weft_connmgr::{ConnectionId, Direction};
pub use weft_resource_manager::{Limits, ResourceError, ResourceManager};
pub use weft_upgrader::UpgradeStep;
pub use weft_upgrader::{EarlyData, SessionInfo};

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingFailure {
    /// No stream could be opened.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The exchange failed.
    #[error(transparent)]
    Ping(#[from] ping::PingError),
    /// No answer in time.
    #[error("ping timed out after {0:?}")]
    Timeout(std::time::Duration),
}

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
