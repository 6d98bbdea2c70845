//! Prometheus metrics for a weft host, on `prometheus-client`.
//!
//! Three sources, so that nothing drifts and nothing in the data path waits:
//!
//! - **counters and histograms** (connections opened and closed, establishment time,
//!   dial errors, inbound refusals and upgrade failures, streams, bytes per protocol,
//!   identify, ping RTT) come from the host's synchronous observer hook (`weft-host`'s
//!   feature `metrics-hook`), never from its lossy event channel; bytes are counted by
//!   a meter the host's stream wrapper calls on every read and write (one atomic add);
//! - **gauges** (open connections, connected peers, pending handshakes, dials in
//!   progress, resource usage and limits) are read from the host and its resource
//!   manager when the registry is scraped;
//! - **denials** (`weft_resource_denied_total{scope, resource}`) are the resource
//!   manager's own counters, read at scrape time.
//!
//! Labels are bounded: a protocol is labelled by its handler's registration key, a
//! built-in id ([`BUILTIN_PROTOCOLS`]) or one the user declared, anything else
//! [`OTHER`]; scopes by their class; never by a peer or connection id.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use prometheus_client::registry::Registry;
//! use std::sync::Arc;
//!
//! let mut registry = Registry::default();
//! let metrics = weft_metrics::Metrics::new(&mut registry);
//! let host = weft_host::Host::builder().observer(metrics.observer()).build()?;
//! metrics.register_host(&mut registry, &host);
//! // Mount `weft_metrics::encode(&registry)` in your own server, or:
//! let server = weft_metrics::MetricsServer::bind(
//!     "127.0.0.1:9464".parse()?,
//!     Arc::new(registry),
//! )
//! .await?;
//! tokio::spawn(server.run());
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod collector;
pub mod labels;
mod observer;
#[cfg(feature = "server")]
mod server;

pub use labels::{ProtocolLabels, BUILTIN_PROTOCOLS, OTHER};
pub use prometheus_client;
#[cfg(feature = "server")]
pub use server::{MetricsServer, ServeError, CONTENT_TYPE_OPENMETRICS};

use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The prefix of every metric name.
pub const PREFIX: &str = "weft";

/// A host's metrics: the families the observer writes to, registered in a registry
/// under [`PREFIX`].
#[derive(Debug, Clone)]
pub struct Metrics {
    families: observer::Families,
}

impl Metrics {
    /// Registers the families in `registry` (as `weft_...`); protocols are labelled
    /// by handler key or built-in id, everything else `other`.
    pub fn new(registry: &mut Registry) -> Self {
        Metrics::with_protocols(registry, std::iter::empty::<String>())
    }

    /// [`new`](Self::new), and `known` protocol ids keep their own label even on
    /// streams no handler of ours serves (a client's outbound protocols).
    pub fn with_protocols(
        registry: &mut Registry,
        known: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let registry = registry.sub_registry_with_prefix(PREFIX);
        Metrics {
            families: observer::Families::register(registry, ProtocolLabels::new(known)),
        }
    }

    /// The observer to give the host: `HostBuilder::observer(metrics.observer())`.
    pub fn observer(&self) -> Arc<dyn weft_host::Observer> {
        Arc::new(self.families.clone())
    }

    /// Adds the gauges read from `host` and its resource manager at scrape time, and
    /// the resource manager's denial counters. The registry keeps a handle of the
    /// host; register one host per registry.
    pub fn register_host(&self, registry: &mut Registry, host: &weft_host::Host) {
        registry
            .sub_registry_with_prefix(PREFIX)
            .register_collector(Box::new(collector::HostCollector {
                host: host.clone(),
                labels: self.families.protocol_labels().clone(),
            }));
    }
}

/// The registry in the OpenMetrics text format (what `/metrics` answers).
///
/// # Errors
///
/// Only if a metric fails to encode itself (`fmt::Error`).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

// The README's example is compiled as a doctest.
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
