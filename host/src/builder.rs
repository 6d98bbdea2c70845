//! Building a host.

use crate::config::HostConfig;
use crate::error::BuildError;
use crate::host::Host;
use crate::transport::memory::MemoryTransport;
use crate::transport::Transport;
use libp2p_identity::Keypair;
use std::sync::Arc;
use std::time::Duration;
use weft_connmgr::{
    ConnectionLimits, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy,
};
use weft_peerstore::{MemoryPeerStore, PeerStore};
use weft_resource_manager::{Limits, ResourceManager};
use weft_upgrader::{SecurityUpgrade, StreamMuxer, Upgrader};

/// Builds a [`Host`].
///
/// Everything has a default, so `Host::builder().build()` is a working host: a fresh
/// Ed25519 identity; TCP (feature `tcp`), QUIC (feature `quic`) and in-memory transports; Noise then TLS
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
    resources: Option<ResourceManager>,
    upgrade_timeout: Duration,
    inline_muxer_negotiation: bool,
    lazy: bool,
    dial: crate::dial::DialConfig,
    resolver: ResolverChoice,
    #[cfg(feature = "metrics-hook")]
    observer: Option<Arc<dyn crate::Observer>>,
    #[cfg(feature = "relay")]
    pub(crate) relay: crate::relay::RelaySetup,
    #[cfg(feature = "autonat")]
    pub(crate) autonat: crate::autonat::AutonatSetup,
    #[cfg(feature = "dcutr")]
    pub(crate) dcutr: crate::dcutr::DcutrSetup,
}

/// Which resolver the host gets.
enum ResolverChoice {
    /// The feature's default (`dns`: the system's configuration on hickory).
    Default,
    /// This one, or none.
    Given(Option<Arc<dyn crate::dial::dns::Resolver>>),
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
            resources: None,
            upgrade_timeout: Duration::from_secs(20),
            inline_muxer_negotiation: true,
            lazy: true,
            dial: crate::dial::DialConfig::default(),
            resolver: ResolverChoice::Default,
            #[cfg(feature = "metrics-hook")]
            observer: None,
            #[cfg(feature = "relay")]
            relay: Default::default(),
            #[cfg(feature = "autonat")]
            autonat: Default::default(),
            #[cfg(feature = "dcutr")]
            dcutr: Default::default(),
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

    /// The resource manager every connection, stream and buffer is charged to
    /// (default: `ResourceManager::new(Limits::auto())`, scaled to this machine). The
    /// default connection policy is derived from its limits
    /// ([`connection_manager_config_for`]); a policy given with
    /// [`connection_policy`](Self::connection_policy) is used as it is.
    pub fn resource_manager(mut self, resources: ResourceManager) -> Self {
        self.resources = Some(resources);
        self
    }

    /// Timeouts and identify strings.
    pub fn config(mut self, config: HostConfig) -> Self {
        self.config = config;
        self
    }

    /// How dials rank, schedule and back off (default [`DialConfig::default`](crate::DialConfig)).
    pub fn dial_config(mut self, dial: crate::dial::DialConfig) -> Self {
        self.dial = dial;
        self
    }

    /// The DNS resolver for `/dns*` and `/dnsaddr` addresses (default with the
    /// `dns` feature: [`HickoryResolver::from_system_conf`](crate::dial::HickoryResolver::from_system_conf),
    /// falling back to none if the system has no resolver configuration; without
    /// the feature: none). `None`: no resolver, `/dns*` addresses go to the
    /// transports as they are and `/dnsaddr` is not dialable.
    pub fn resolver(mut self, resolver: Option<Arc<dyn crate::dial::dns::Resolver>>) -> Self {
        self.resolver = ResolverChoice::Given(resolver);
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

    /// An observer told synchronously about connections, dials, streams (and their
    /// bytes), identify and ping (feature `metrics-hook`): what `weft-metrics` counts
    /// with. Its methods run on the host's tasks and must never block.
    #[cfg(feature = "metrics-hook")]
    pub fn observer(mut self, observer: Arc<dyn crate::Observer>) -> Self {
        self.observer = Some(observer);
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
        #[allow(unused_mut)]
        let mut transports = if self.transports.is_empty() {
            default_transports(&keypair)?
        } else {
            self.transports
        };
        #[cfg(feature = "relay")]
        let relay = self.relay.prepare(&mut transports);
        #[cfg(feature = "autonat")]
        let autonat = self.autonat;
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
        let writer = crate::store_writer::StoreWriter::new(peerstore.clone()).map_err(|e| {
            BuildError::Config {
                component: "peerstore writer",
                reason: e.to_string(),
            }
        })?;
        let resources = self
            .resources
            .unwrap_or_else(|| ResourceManager::new(Limits::auto()));
        let policy: Arc<dyn ConnectionPolicy> = match self.policy {
            Some(p) => p,
            None => Arc::new(connection_manager_for(resources.limits())?),
        };
        let resolver = match self.resolver {
            ResolverChoice::Given(r) => r,
            ResolverChoice::Default => crate::dial::default_resolver(),
        };
        let dialer = crate::dial::Dialer::new(self.dial, resolver);
        let host = Host::from_parts(crate::host::HostParts {
            keypair,
            config: self.config,
            transports,
            upgrader,
            peerstore,
            writer,
            policy,
            resources,
            #[cfg(feature = "metrics-hook")]
            hooks: crate::observer::Hooks::new(self.observer),
            #[cfg(not(feature = "metrics-hook"))]
            hooks: crate::observer::Hooks::default(),
            dialer,
        });
        #[cfg(feature = "relay")]
        relay.install(&host.inner);
        #[cfg(feature = "autonat")]
        autonat.install(&host.inner)?;
        #[cfg(feature = "dcutr")]
        self.dcutr.install(&host.inner);
        Ok(host)
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

#[allow(unused_variables, unused_mut, clippy::vec_init_then_push)]
fn default_transports(keypair: &Keypair) -> Result<Vec<Arc<dyn Transport>>, BuildError> {
    let mut list: Vec<Arc<dyn Transport>> = Vec::new();
    #[cfg(feature = "tcp")]
    list.push(Arc::new(crate::transport::tcp::TcpTransport::new()));
    #[cfg(feature = "quic")]
    list.push(Arc::new(
        crate::transport::quic::QuicTransport::new(keypair).map_err(|e| BuildError::Config {
            component: "quic",
            reason: e.to_string(),
        })?,
    ));
    list.push(Arc::new(MemoryTransport::new()));
    Ok(list)
}

/// go-libp2p's watermarks, used when the resource manager's limits leave room.
const DEFAULT_LOW_WATERMARK: usize = 160;
const DEFAULT_HIGH_WATERMARK: usize = 192;
/// Inbound connections one remote IP address (IPv6: one /64) may hold, pending and
/// established together.
const DEFAULT_MAX_INBOUND_PER_IP: usize = 16;
/// Inbound handshakes one remote IP address (IPv6: one /64) may have in progress.
const DEFAULT_MAX_PENDING_INBOUND_PER_IP: usize = 8;
/// Inbound relayed connections one relay may bring, pending and established
/// together: the relay stands in for the IP address its circuits hide, so it gets
/// the per-IP cap (and a relay server's default of 16 circuits per peer fits). Never
/// more than half the high watermark, so one relay cannot fill what trimming keeps.
const DEFAULT_MAX_RELAYED_INBOUND_PER_RELAY: usize = DEFAULT_MAX_INBOUND_PER_IP;

/// The connection manager settings that agree with `limits` by construction: the
/// high watermark sits below the resource manager's hard connection limit (at most
/// 7/8 of it, so trimming starts before the hard limit refuses anyone: the go-libp2p
/// #1640 trap), the low watermark at 5/6 of the high one, and the pending-inbound
/// limit equal to the resource manager's. Hard limits on established connections are
/// left to the resource manager; the connection manager adds the per-IP caps
/// (16 inbound, 8 pending, IPv6 grouped by /64; exactly 127.0.0.1 and ::1 exempt),
/// a cap of 16 inbound relayed connections per relay (which the per-IP caps cannot
/// see; at most half the high watermark), and trimming, with a 20 s grace period.
pub fn connection_manager_config_for(limits: &Limits) -> ConnectionManagerConfig {
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let system = &limits.system;
    // Trimming must start before any of the hard limits on established connections
    // refuses: the smallest of them bounds the high watermark.
    let hard = to_usize(
        system
            .connections_total
            .min(system.connections_inbound)
            .min(system.connections_outbound),
    );
    let high = DEFAULT_HIGH_WATERMARK
        .min(hard.saturating_sub(hard.div_ceil(8)))
        .max(1);
    let low = if high == DEFAULT_HIGH_WATERMARK {
        DEFAULT_LOW_WATERMARK
    } else {
        high - high / 6
    };
    let pending = to_usize(system.pending_inbound.min(limits.transient.pending_inbound));
    let connmgr_limits = ConnectionLimits::default()
        .with_max_pending_inbound(pending)
        .with_max_inbound_per_ip(DEFAULT_MAX_INBOUND_PER_IP)
        .with_max_pending_inbound_per_ip(DEFAULT_MAX_PENDING_INBOUND_PER_IP)
        .with_max_relayed_inbound_per_relay(
            DEFAULT_MAX_RELAYED_INBOUND_PER_RELAY.min(high / 2).max(1),
        );
    ConnectionManagerConfig::default()
        .with_limits(connmgr_limits)
        .with_watermarks(low, high)
        .with_grace_period(Duration::from_secs(20))
}

/// A connection manager with [`connection_manager_config_for`] `limits`.
pub fn connection_manager_for(limits: &Limits) -> Result<ConnectionManager, BuildError> {
    ConnectionManager::new(connection_manager_config_for(limits)).map_err(|e| BuildError::Config {
        component: "connection manager",
        reason: e.to_string(),
    })
}

/// The default connection policy: [`connection_manager_for`] the limits of
/// `Limits::auto()`: trim from 192 down to 160 established connections (go-libp2p's
/// watermarks, lowered if the resource manager's hard limit is lower), never trimming
/// connections younger than 20 s; at most 128 inbound handshakes at once (the
/// resource manager's pending limit; when full, the host evicts the least advanced
/// handshake), 8 of them and 16 inbound connections per remote IP address (IPv6: per
/// /64; exactly 127.0.0.1 and ::1 exempt), 16 inbound relayed connections per relay.
pub fn default_policy() -> Result<Arc<dyn ConnectionPolicy>, BuildError> {
    Ok(Arc::new(default_connection_manager()?))
}

/// The connection manager behind [`default_policy`], as a concrete type: keep a clone
/// to tag and protect peers or read its counters, and give the host the other with
/// [`HostBuilder::connection_policy`].
pub fn default_connection_manager() -> Result<ConnectionManager, BuildError> {
    connection_manager_for(&Limits::auto())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_never_sits_above_the_hard_connection_limit() {
        let mut cases = vec![Limits::auto(), Limits::scaled(64 << 20, 64)];
        for hard in [1u64, 2, 7, 8, 50, 100, 192, 219, 220, 1000] {
            let mut limits = Limits::auto();
            limits.system.connections_total = hard;
            cases.push(limits.clone());
            limits.system.connections_total = u64::MAX;
            limits.system.connections_inbound = hard;
            cases.push(limits);
        }
        for limits in cases {
            let config = connection_manager_config_for(&limits);
            let w = config.watermarks.expect("trimming is on");
            let s = &limits.system;
            let hard = s
                .connections_total
                .min(s.connections_inbound)
                .min(s.connections_outbound);
            assert!(w.low <= w.high, "{w:?}");
            assert!(
                w.high as u64 <= hard,
                "high {} above the hard limit {hard}",
                w.high
            );
            if hard >= 2 {
                assert!(
                    (w.high as u64) < hard,
                    "high {} at the hard limit {hard}",
                    w.high
                );
            }
            assert_eq!(
                config.limits.max_pending_inbound,
                Some(s.pending_inbound.min(limits.transient.pending_inbound) as usize)
            );
            // One relay's circuits never fill what trimming keeps.
            let relayed = config
                .limits
                .max_relayed_inbound_per_relay
                .expect("relayed inbound connections are capped");
            assert!(
                relayed >= 1 && (relayed <= w.high / 2 || w.high < 2),
                "{relayed}"
            );
            // The manager accepts what was derived.
            assert!(ConnectionManager::new(config).is_ok());
        }
        // Where the hard limit leaves room, go-libp2p's watermarks.
        let roomy = connection_manager_config_for(&Limits::scaled(1 << 30, 4096));
        let w = roomy.watermarks.unwrap();
        assert_eq!(
            (w.low, w.high),
            (DEFAULT_LOW_WATERMARK, DEFAULT_HIGH_WATERMARK)
        );
        assert_eq!(
            roomy.limits.max_relayed_inbound_per_relay,
            Some(DEFAULT_MAX_RELAYED_INBOUND_PER_RELAY)
        );
    }
}
