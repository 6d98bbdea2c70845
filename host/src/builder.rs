//! Building a host.

use crate::error::BuildError;
use crate::host::{Host, HostConfig};
use crate::transport::memory::MemoryTransport;
use crate::transport::Transport;
use libp2p_identity::Keypair;
use std::sync::Arc;
use std::time::Duration;
use weft_connmgr::{
    ConnectionLimits, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy,
};
use weft_peerstore::{MemoryPeerStore, PeerStore};
use weft_upgrader::{SecurityUpgrade, StreamMuxer, Upgrader};

/// Builds a [`Host`].
///
/// Everything has a default, so `Host::builder().build()` is a working host: a fresh
/// Ed25519 identity; TCP (feature `tcp`) and in-memory transports; Noise then TLS
/// (features `noise`, `tls`); yamux (feature `yamux`); a memory peerstore; and a
/// connection manager with the defaults of [`default_policy`]. Adding a security protocol or muxer replaces the defaults of
/// that kind; the order of the calls is the order of preference.
pub struct HostBuilder {
    keypair: Option<Keypair>,
    config: HostConfig,
    transports: Vec<Arc<dyn Transport>>,
    security: Vec<Arc<dyn SecurityUpgrade>>,
    muxers: Vec<Arc<dyn StreamMuxer>>,
    peerstore: Option<Arc<dyn PeerStore>>,
    policy: Option<Arc<dyn ConnectionPolicy>>,
    upgrade_timeout: Duration,
    inline_muxer_negotiation: bool,
    lazy: bool,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder::new()
    }
}

impl HostBuilder {
    /// A builder with every default.
    pub fn new() -> Self {
        HostBuilder {
            keypair: None,
            config: HostConfig::default(),
            transports: Vec::new(),
            security: Vec::new(),
            muxers: Vec::new(),
            peerstore: None,
            policy: None,
            upgrade_timeout: Duration::from_secs(20),
            inline_muxer_negotiation: true,
            lazy: true,
        }
    }

    /// The identity keypair (default: a fresh Ed25519 key).
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Adds a transport (replacing the defaults on first call).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transports.push(transport);
        self
    }

    /// Adds a security protocol, in order of preference (replacing the defaults).
    pub fn security(mut self, security: Arc<dyn SecurityUpgrade>) -> Self {
        self.security.push(security);
        self
    }

    /// Adds a stream muxer, in order of preference (replacing the defaults).
    pub fn muxer(mut self, muxer: Arc<dyn StreamMuxer>) -> Self {
        self.muxers.push(muxer);
        self
    }

    /// The peerstore (default: [`MemoryPeerStore`]).
    pub fn peerstore(mut self, peerstore: Arc<dyn PeerStore>) -> Self {
        self.peerstore = Some(peerstore);
        self
    }

    /// The connection policy (default: [`default_policy`]); `weft_connmgr::NoLimits`
    /// turns every limit off.
    pub fn connection_policy(mut self, policy: Arc<dyn ConnectionPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Timeouts and identify strings.
    pub fn config(mut self, config: HostConfig) -> Self {
        self.config = config;
        self
    }

    /// The agent version identify advertises.
    pub fn agent_version(mut self, agent: impl Into<String>) -> Self {
        self.config.agent_version = agent.into();
        self
    }

    /// The overall timeout of one connection upgrade (default 20 s).
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.upgrade_timeout = timeout;
        self
    }

    /// Whether to negotiate the muxer inside the security handshake (default on).
    pub fn inline_muxer_negotiation(mut self, on: bool) -> Self {
        self.inline_muxer_negotiation = on;
        self
    }

    /// Whether dials with a single choice propose it lazily (default on).
    pub fn lazy_negotiation(mut self, on: bool) -> Self {
        self.lazy = on;
        self
    }

    /// Builds the host. Must run inside a tokio runtime: the host spawns its tasks there.
    pub fn build(self) -> Result<Host, BuildError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BuildError::NoRuntime);
        }
        let keypair = self.keypair.unwrap_or_else(Keypair::generate_ed25519);
        let security = if self.security.is_empty() {
            default_security(&keypair)?
        } else {
            self.security
        };
        if security.is_empty() {
            return Err(BuildError::NoSecurity);
        }
        let muxers = if self.muxers.is_empty() {
            default_muxers()
        } else {
            self.muxers
        };
        if muxers.is_empty() {
            return Err(BuildError::NoMuxer);
        }
        let transports = if self.transports.is_empty() {
            default_transports()
        } else {
            self.transports
        };
        let mut upgrader = Upgrader::builder()
            .timeout(self.upgrade_timeout)
            .inline_muxer_negotiation(self.inline_muxer_negotiation)
            .lazy(self.lazy);
        for s in security {
            upgrader = upgrader.security(s);
        }
        for m in muxers {
            upgrader = upgrader.muxer(m);
        }
        let upgrader = upgrader.build().map_err(|e| BuildError::Config {
            component: "upgrader",
            reason: e.to_string(),
        })?;
        let peerstore = self
            .peerstore
            .unwrap_or_else(|| Arc::new(MemoryPeerStore::new()));
        let policy = match self.policy {
            Some(p) => p,
            None => default_policy()?,
        };
        Ok(Host::from_parts(
            keypair,
            self.config,
            transports,
            upgrader,
            peerstore,
            policy,
        ))
    }
}

// The pushes depend on cargo features, so `vec![]` cannot say the same.
#[allow(unused_variables, unused_mut, clippy::vec_init_then_push)]
fn default_security(keypair: &Keypair) -> Result<Vec<Arc<dyn SecurityUpgrade>>, BuildError> {
    let mut list: Vec<Arc<dyn SecurityUpgrade>> = Vec::new();
    #[cfg(feature = "noise")]
    list.push(Arc::new(weft_security_noise::Noise::new(keypair).map_err(
        |e| BuildError::Security {
            protocol: "noise",
            reason: e.to_string(),
        },
    )?));
    #[cfg(feature = "tls")]
    list.push(Arc::new(weft_security_tls::TlsUpgrade::new(
        keypair.clone(),
    )));
    Ok(list)
}

#[allow(unused_mut, clippy::vec_init_then_push)]
fn default_muxers() -> Vec<Arc<dyn StreamMuxer>> {
    let mut list: Vec<Arc<dyn StreamMuxer>> = Vec::new();
    #[cfg(feature = "yamux")]
    list.push(Arc::new(weft_muxer_yamux::Yamux::new()));
    list
}

#[allow(unused_mut, clippy::vec_init_then_push)]
fn default_transports() -> Vec<Arc<dyn Transport>> {
    let mut list: Vec<Arc<dyn Transport>> = Vec::new();
    #[cfg(feature = "tcp")]
    list.push(Arc::new(crate::transport::tcp::TcpTransport::new()));
    list.push(Arc::new(MemoryTransport::new()));
    list
}

/// The default connection policy: trim from 192 down to 160 established connections
/// (go-libp2p's watermarks), never trimming connections younger than 20 s; at most
/// 128 inbound handshakes at once and 16 inbound connections per remote IP address
/// (loopback exempt), so a flood of half-open connections stays cheap.
pub fn default_policy() -> Result<Arc<dyn ConnectionPolicy>, BuildError> {
    Ok(Arc::new(default_connection_manager()?))
}

/// The connection manager behind [`default_policy`], as a concrete type: keep a clone
/// to tag and protect peers or read its counters, and give the host the other with
/// [`HostBuilder::connection_policy`].
pub fn default_connection_manager() -> Result<ConnectionManager, BuildError> {
    let limits = ConnectionLimits::default()
        .with_max_pending_inbound(128)
        .with_max_inbound_per_ip(16);
    let config = ConnectionManagerConfig::default()
        .with_limits(limits)
        .with_watermarks(160, 192)
        .with_grace_period(Duration::from_secs(20));
    ConnectionManager::new(config).map_err(|e| BuildError::Config {
        component: "connection manager",
        reason: e.to_string(),
    })
}
