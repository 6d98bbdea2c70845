//! Gauges read at scrape time from the host and its resource manager, and the
//! resource manager's denial counters.

use crate::labels::{ConnectionLabels, ProtocolLabels};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use weft_host::Host;
use weft_resource_manager::{Resource, ScopeLimit, ScopeUsage};

/// Labels of a fixed resource scope's figure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ScopeLabels {
    /// `system`, `transient`, `allowlist_system`, `allowlist_transient`.
    scope: &'static str,
    /// [`Resource::as_str`].
    resource: &'static str,
}

/// Labels of a protocol scope's figure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ProtocolScopeLabels {
    /// A bounded protocol label.
    protocol: String,
    /// [`Resource::as_str`].
    resource: &'static str,
}

/// Labels of a count of live scopes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    /// `peer`, `protocol`, `protocol_peer`.
    scope: &'static str,
}

/// Reads a host's state on every scrape.
#[derive(Debug)]
pub(crate) struct HostCollector {
    pub(crate) host: Host,
    pub(crate) labels: ProtocolLabels,
}

fn gauge<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, i64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge without labels.
fn single_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: usize,
) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(family)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl HostCollector {
    /// The usage of every fixed scope, by resource.
    fn scope_usages(stats: &weft_resource_manager::Stats) -> [(&'static str, ScopeUsage); 4] {
        [
            ("system", stats.system),
            ("transient", stats.transient),
            ("allowlist_system", stats.allowlist_system),
            ("allowlist_transient", stats.allowlist_transient),
        ]
    }
}

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let host = &self.host;

        // Connections and peers.
        let connections = host.connections();
        let mut open: HashMap<ConnectionLabels, i64> = HashMap::new();
        for c in &connections {
            *open.entry(ConnectionLabels::of(c)).or_default() += 1;
        }
        gauge(
            &mut encoder,
            "connections_open",
            "Connections open now, by direction, transport, security, muxer and IP version",
            open,
        )?;
        let peers: BTreeSet<_> = connections.iter().map(|c| c.peer).collect();
        single_gauge(
            &mut encoder,
            "connected_peers",
            "Distinct peers with at least one open connection",
            peers.len(),
        )?;
        single_gauge(
            &mut encoder,
            "inbound_handshakes_pending",
            "Inbound connections whose handshake is in progress",
            host.pending_inbound(),
        )?;
        single_gauge(
            &mut encoder,
            "dials_in_progress",
            "Dials to known peers in progress",
            host.dials_in_progress(),
        )?;

        // Resource usage and limits.
        let manager = host.resource_manager();
        let stats = manager.stats();
        let usages = Self::scope_usages(&stats);
        gauge(
            &mut encoder,
            "resource_usage",
            "What the resource manager's fixed scopes hold now, by scope and resource (memory in bytes)",
            usages.iter().flat_map(|(scope, usage)| {
                Resource::ALL.iter().map(move |r| {
                    (
                        ScopeLabels {
                            scope,
                            resource: r.as_str(),
                        },
                        to_i64(usage.get(*r)),
                    )
                })
            }),
        )?;
        let limits = manager.limits();
        let fixed_limits: [(&'static str, &ScopeLimit); 4] = [
            ("system", &limits.system),
            ("transient", &limits.transient),
            ("allowlist_system", &limits.allowlist_system),
            ("allowlist_transient", &limits.allowlist_transient),
        ];
        gauge(
            &mut encoder,
            "resource_limit",
            "The resource manager's limits of its fixed scopes (unlimited ones left out)",
            fixed_limits.iter().flat_map(|(scope, limit)| {
                Resource::ALL.iter().filter_map(move |r| {
                    let value = limit.get(*r);
                    (value != u64::MAX).then(|| {
                        (
                            ScopeLabels {
                                scope,
                                resource: r.as_str(),
                            },
                            to_i64(value),
                        )
                    })
                })
            }),
        )?;
        // Protocol scopes are named by the negotiated id: sum them under bounded
        // labels (a registered exact id, a built-in or declared one, else `other`).
        let registered: BTreeSet<String> = host.protocols().into_iter().collect();
        let mut by_label: BTreeMap<ProtocolScopeLabels, u64> = BTreeMap::new();
        for (name, usage) in &stats.protocols {
            let protocol = if registered.contains(name) {
                name.clone()
            } else {
                self.labels.id_label(name).to_string()
            };
            for r in [
                Resource::StreamsInbound,
                Resource::StreamsOutbound,
                Resource::Memory,
            ] {
                *by_label
                    .entry(ProtocolScopeLabels {
                        protocol: protocol.clone(),
                        resource: r.as_str(),
                    })
                    .or_default() += usage.get(r);
            }
        }
        gauge(
            &mut encoder,
            "resource_protocol_usage",
            "What the resource manager's protocol scopes hold now, by protocol and resource",
            by_label.into_iter().map(|(l, v)| (l, to_i64(v))),
        )?;
        gauge(
            &mut encoder,
            "resource_live_scopes",
            "Resource scopes created on demand and live now, by class",
            [
                (ClassLabel { scope: "peer" }, stats.peers),
                (ClassLabel { scope: "protocol" }, stats.protocols.len()),
                (
                    ClassLabel {
                        scope: "protocol_peer",
                    },
                    stats.protocol_peers,
                ),
            ]
            .map(|(l, v)| (l, i64::try_from(v).unwrap_or(i64::MAX))),
        )?;

        // Denials, counted by the resource manager itself, so they never drift.
        let denials = manager.denials();
        let mut family = encoder.encode_descriptor(
            "resource_denied",
            "Reservations the resource manager refused, by the class of the scope that refused and the resource",
            None,
            MetricType::Counter,
        )?;
        for (scope, resource, count) in denials.iter() {
            let labels = ScopeLabels {
                scope,
                resource: resource.as_str(),
            };
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
