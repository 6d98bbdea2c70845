//! The host's configuration: timeouts, identify strings, lifecycle intervals.

use std::time::Duration;

/// Timeouts and identity strings of a host.
///
/// More fields will come: start from [`HostConfig::default`] and set what you need
/// with the `with_*` methods (or assign the public fields of a value you have).
///
/// ```
/// use std::time::Duration;
/// let config = weft_host::HostConfig::default()
///     .with_idle_timeout(Some(Duration::from_secs(30)))
///     .with_agent_version("my-app/1.0");
/// assert_eq!(config.agent_version, "my-app/1.0");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostConfig {
    /// The whole dial of one peer, all addresses included.
    pub dial_timeout: Duration,
    /// One address attempt: transport connect plus upgrade.
    pub dial_timeout_per_address: Duration,
    /// The connection attempt delay (RFC 8305): between starting attempts on
    /// successive addresses of one dial, unless an attempt fails first (then the
    /// next starts at once). Default 250 ms.
    pub dial_stagger: Duration,
    /// Protocol negotiation on a new stream.
    pub negotiation_timeout: Duration,
    /// Identify and ping exchanges.
    pub protocol_timeout: Duration,
    /// How long shutdown waits for connections to close gracefully.
    pub shutdown_grace: Duration,
    /// The agent version identify advertises.
    pub agent_version: String,
    /// The protocol version identify advertises.
    pub protocol_version: String,
    /// Capacity of the event channel; slower subscribers are told they lagged.
    pub event_capacity: usize,
    /// A connection with no open stream and no stream traffic for this long is closed
    /// (default 120 s; `None` keeps idle connections forever). The muxer's keep-alive
    /// pings are not traffic: they only tell whether the link is alive.
    pub idle_timeout: Option<Duration>,
    /// How often the host closes idle connections and asks the connection policy to
    /// trim (default 5 s), so the count comes back under the high watermark once the
    /// grace period is over even when no new connection arrives; and re-reads the
    /// interface addresses of listeners on `0.0.0.0` or `::`.
    pub maintenance_interval: Duration,
    /// How many distinct observers (an IPv4 address, an IPv6 /56 each) must report
    /// the same public address of ours in identify before it is offered as an
    /// [`Event::ExternalAddrCandidate`](crate::Event::ExternalAddrCandidate)
    /// (default 4, as go-libp2p).
    pub observed_addr_threshold: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            dial_timeout: Duration::from_secs(30),
            dial_timeout_per_address: Duration::from_secs(15),
            dial_stagger: Duration::from_millis(250),
            negotiation_timeout: Duration::from_secs(10),
            protocol_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            agent_version: concat!("weft/", env!("CARGO_PKG_VERSION")).to_string(),
            protocol_version: "ipfs/0.1.0".to_string(),
            event_capacity: 1024,
            idle_timeout: Some(Duration::from_secs(120)),
            maintenance_interval: Duration::from_secs(5),
            observed_addr_threshold: 4,
        }
    }
}

impl HostConfig {
    /// Sets the whole dial of one peer, all addresses included.
    pub fn with_dial_timeout(mut self, dial_timeout: Duration) -> Self {
        self.dial_timeout = dial_timeout;
        self
    }

    /// Sets one address attempt: transport connect plus upgrade.
    pub fn with_dial_timeout_per_address(mut self, dial_timeout_per_address: Duration) -> Self {
        self.dial_timeout_per_address = dial_timeout_per_address;
        self
    }

    /// Sets the connection attempt delay between successive addresses of one dial.
    pub fn with_dial_stagger(mut self, dial_stagger: Duration) -> Self {
        self.dial_stagger = dial_stagger;
        self
    }

    /// Sets protocol negotiation on a new stream.
    pub fn with_negotiation_timeout(mut self, negotiation_timeout: Duration) -> Self {
        self.negotiation_timeout = negotiation_timeout;
        self
    }

    /// Sets identify and ping exchanges.
    pub fn with_protocol_timeout(mut self, protocol_timeout: Duration) -> Self {
        self.protocol_timeout = protocol_timeout;
        self
    }

    /// Sets how long shutdown waits for connections to close gracefully.
    pub fn with_shutdown_grace(mut self, shutdown_grace: Duration) -> Self {
        self.shutdown_grace = shutdown_grace;
        self
    }

    /// Sets the capacity of the event channel.
    pub fn with_event_capacity(mut self, event_capacity: usize) -> Self {
        self.event_capacity = event_capacity;
        self
    }

    /// Sets the idle timeout (`None` keeps idle connections).
    pub fn with_idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Sets how often idle connections are closed and the policy asked to trim.
    pub fn with_maintenance_interval(mut self, maintenance_interval: Duration) -> Self {
        self.maintenance_interval = maintenance_interval;
        self
    }

    /// Sets [`HostConfig::observed_addr_threshold`].
    pub fn with_observed_addr_threshold(mut self, observers: usize) -> Self {
        self.observed_addr_threshold = observers;
        self
    }

    /// Sets the agent version identify advertises.
    pub fn with_agent_version(mut self, agent_version: impl Into<String>) -> Self {
        self.agent_version = agent_version.into();
        self
    }

    /// Sets the protocol version identify advertises.
    pub fn with_protocol_version(mut self, protocol_version: impl Into<String>) -> Self {
        self.protocol_version = protocol_version.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setters_change_only_their_field() {
        let default = HostConfig::default();
        let set = HostConfig::default()
            .with_idle_timeout(None)
            .with_maintenance_interval(Duration::from_millis(50))
            .with_dial_timeout(Duration::from_secs(1))
            .with_agent_version("a/1")
            .with_protocol_version("p/2");
        assert_eq!(set.idle_timeout, None);
        assert_eq!(set.maintenance_interval, Duration::from_millis(50));
        assert_eq!(set.dial_timeout, Duration::from_secs(1));
        assert_eq!(
            (set.agent_version.as_str(), set.protocol_version.as_str()),
            ("a/1", "p/2")
        );
        assert_eq!(
            set.dial_timeout_per_address,
            default.dial_timeout_per_address
        );
        assert_eq!(set.negotiation_timeout, default.negotiation_timeout);
        assert_eq!(set.event_capacity, default.event_capacity);
        assert_eq!(default.idle_timeout, Some(Duration::from_secs(120)));
    }
}
