//! AutoNAT v2 in the host (feature `autonat`), on `weft-autonat`.
//!
//! - The client ([`HostBuilder::autonat_client`]): probes our addresses, one per
//!   probe and several probes at once within the [`TrackerConfig`]'s limits
//!   (listen addresses, accepted external addresses, the candidates identify's
//!   observations produced, [`Event::ExternalAddrCandidate`], and each public
//!   address an AutoNAT server observed us at) with connected peers that speak
//!   `/libp2p/autonat/2/dial-request` (identify tells which), applies the
//!   confidence rule of a [`TrackerConfig`], reports each
//!   verdict that changes as [`Event::AddrReachability`] and answers
//!   [`Host::reachability`]. Addresses the host's classifier does not take as public
//!   (loopback, private ...; see [`DialConfig::classifier`]) are never probed and
//!   never confirmed. It re-probes on a timer and whenever the addresses change,
//!   and serves `/libp2p/autonat/2/dial-back`, matching the nonce to the probe in
//!   flight.
//! - The server ([`HostBuilder::autonat_server`]): serves dial requests within a
//!   [`ServerConfig`], and dials back from a second, listener-less host of its own
//!   (a fresh identity, the default transports, charged to this host's resource
//!   manager), so the dial-back is a new connection from a fresh port, as go-libp2p
//!   does it: never the connection the request came on, and never our listening
//!   port (which could punch an accidental hole through the client's NAT).
//!
//! [`Event::ExternalAddrCandidate`]: crate::Event::ExternalAddrCandidate
//! [`Event::AddrReachability`]: crate::Event::AddrReachability
//! [`DialConfig::classifier`]: crate::DialConfig::classifier

mod client;
mod server;

pub(crate) use client::ClientShared;

use crate::builder::HostBuilder;
use crate::error::BuildError;
use crate::host::{Host, Inner};
use multiaddr::Multiaddr;
use std::sync::Arc;

pub use weft_autonat::{
    ProbeConfig, Reachability, Reason, ServerConfig, TrackerConfig, Verdict, DIAL_BACK_PROTOCOL,
    DIAL_REQUEST_PROTOCOL,
};

/// The AutoNAT v2 client's settings: the confidence rule and schedule, and the
/// limits of one probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutonatClientConfig {
    /// The confidence rule and the schedule (default: a margin of 3 servers,
    /// re-probes every hour).
    pub tracker: TrackerConfig,
    /// One probe's limits and timeouts.
    pub probe: ProbeConfig,
}

impl AutonatClientConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The confidence rule and schedule.
    pub fn with_tracker(mut self, tracker: TrackerConfig) -> Self {
        self.tracker = tracker;
        self
    }

    /// One probe's limits and timeouts.
    pub fn with_probe(mut self, probe: ProbeConfig) -> Self {
        self.probe = probe;
        self
    }
}

/// What the builder was asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct AutonatSetup {
    client: Option<AutonatClientConfig>,
    server: Option<ServerConfig>,
}

impl AutonatSetup {
    /// Starts the client and the server on the built host.
    pub(crate) fn install(self, inner: &Arc<Inner>) -> Result<(), BuildError> {
        if let Some(config) = self.server {
            server::install(inner, config)?;
        }
        if let Some(config) = self.client {
            client::install(inner, config);
        }
        Ok(())
    }
}

impl HostBuilder {
    /// Runs the AutoNAT v2 client with `config` (feature `autonat`; off by default):
    /// our addresses get verdicts, reported as
    /// [`Event::AddrReachability`](crate::Event::AddrReachability) and by
    /// [`Host::reachability`].
    pub fn autonat_client(mut self, config: AutonatClientConfig) -> Self {
        self.autonat.client = Some(config);
        self
    }

    /// Serves AutoNAT v2 dial requests within `config` (feature `autonat`; off by
    /// default). Dial-backs leave from a second host with a fresh identity, no
    /// listener and the default transports, security protocols and muxers of the
    /// features built in; [`build`](HostBuilder::build) fails with its
    /// [`BuildError`] when those features give it none (no `noise` nor `tls`, or no
    /// `yamux`).
    pub fn autonat_server(mut self, config: ServerConfig) -> Self {
        self.autonat.server = Some(config);
        self
    }
}

impl Host {
    /// The AutoNAT v2 client's verdict on each address it tracks, in the order it
    /// probes them (empty without [`HostBuilder::autonat_client`]).
    pub fn reachability(&self) -> Vec<(Multiaddr, Verdict)> {
        let client = self.inner.lock().autonat.clone();
        client.map(|c| c.verdicts()).unwrap_or_default()
    }

    /// Takes every AutoNAT result so far as stale and probes every address again
    /// (say, after the network changed in a way the host cannot see).
    pub fn reprobe_reachability(&self) {
        let client = self.inner.lock().autonat.clone();
        if let Some(client) = client {
            client.reprobe();
        }
    }
}

// The relay feature gives host streams this impl already; AutoNAT hands host streams
// to weft-autonat as boxed streams too.
#[cfg(not(feature = "relay"))]
impl weft_upgrader::MuxedStream for crate::Stream {
    fn reset(&mut self) {
        crate::Stream::reset(self);
    }
}
