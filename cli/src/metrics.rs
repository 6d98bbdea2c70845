//! `weft listen --metrics ADDR`: the host's Prometheus metrics over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use weft_host::{Host, HostBuilder};
use weft_metrics::prometheus_client::registry::Registry;
use weft_metrics::{Metrics, MetricsServer};

/// The metrics of a host being built: hand the builder to [`Exporter::observe`],
/// then start serving with [`Exporter::serve`] once the host exists.
pub struct Exporter {
    metrics: Metrics,
    registry: Registry,
}

impl Exporter {
    /// Metrics for a host that serves `/echo/1.0.0` (declared, so a client-side echo
    /// stream keeps its label too).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::with_protocols(&mut registry, [crate::echo::PROTOCOL]);
        Exporter { metrics, registry }
    }

    /// The builder with this exporter's observer.
    pub fn observe(&self, builder: HostBuilder) -> HostBuilder {
        builder.observer(self.metrics.observer())
    }

    /// Serves `host`'s metrics on `addr` at `/metrics` from a task of its own; returns
    /// the address bound (port 0 resolved).
    pub async fn serve(mut self, addr: SocketAddr, host: &Host) -> Result<SocketAddr, String> {
        self.metrics.register_host(&mut self.registry, host);
        let server = MetricsServer::bind(addr, Arc::new(self.registry))
            .await
            .map_err(|e| e.to_string())?;
        let bound = server.local_addr();
        tokio::spawn(server.run());
        Ok(bound)
    }
}
