//! The counters and histograms, fed by the host's synchronous [`Observer`] hook.

use crate::labels::{
    dial_reason, direction, upgrade_step, ByteLabels, ConnectionLabels, IdentifyLabels,
    ProtocolLabels, ReasonLabel, StepLabel, StreamLabels,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;
use weft_host::{ConnectionInfo, DialError, Observer, StreamInfo, StreamMeter};

/// A histogram family whose histograms share one set of buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn establishment_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn rtt_histogram() -> Histogram {
    // 0.1 ms to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every family the observer writes to. Cloning shares them.
#[derive(Debug, Clone)]
pub(crate) struct Families {
    labels: ProtocolLabels,
    connections_opened: Family<ConnectionLabels, Counter>,
    connections_closed: Family<ConnectionLabels, Counter>,
    establishment: Histograms<ConnectionLabels>,
    dial_errors: Family<ReasonLabel, Counter>,
    inbound_refused: Family<ReasonLabel, Counter>,
    upgrade_failures: Family<StepLabel, Counter>,
    evicted: Counter,
    streams_opened: Family<StreamLabels, Counter>,
    streams_closed: Family<StreamLabels, Counter>,
    streams_open: Family<StreamLabels, Gauge>,
    streams_refused: Counter,
    bytes: Family<ByteLabels, Counter>,
    identify: Family<IdentifyLabels, Counter>,
    ping_rtt: Histogram,
    ping_failures: Counter,
}

impl Families {
    /// Creates the families and registers them in `registry` (names relative to it).
    pub(crate) fn register(registry: &mut Registry, labels: ProtocolLabels) -> Self {
        let f = Families {
            labels,
            connections_opened: Family::default(),
            connections_closed: Family::default(),
            establishment: Family::new_with_constructor(establishment_histogram),
            dial_errors: Family::default(),
            inbound_refused: Family::default(),
            upgrade_failures: Family::default(),
            evicted: Counter::default(),
            streams_opened: Family::default(),
            streams_closed: Family::default(),
            streams_open: Family::default(),
            streams_refused: Counter::default(),
            bytes: Family::default(),
            identify: Family::default(),
            ping_rtt: rtt_histogram(),
            ping_failures: Counter::default(),
        };
        registry.register(
            "connections_opened",
            "Connections that finished their upgrade, by direction, transport, security, muxer and IP version",
            f.connections_opened.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed, by the labels they were opened with",
            f.connections_closed.clone(),
        );
        registry.register_with_unit(
            "connection_establishment_duration",
            "Time from the dial attempt's start (or the accept) to the upgraded connection",
            Unit::Seconds,
            f.establishment.clone(),
        );
        registry.register(
            "dial_errors",
            "Failed dial attempts (each address on its own), by reason",
            f.dial_errors.clone(),
        );
        registry.register(
            "inbound_connections_refused",
            "Inbound connections refused by a connection or resource limit, before or right after the handshake, by reason",
            f.inbound_refused.clone(),
        );
        registry.register(
            "inbound_upgrade_failures",
            "Inbound connections whose upgrade failed, by the step that failed",
            f.upgrade_failures.clone(),
        );
        registry.register(
            "inbound_handshakes_evicted",
            "Pending inbound handshakes evicted to make room for a newcomer",
            f.evicted.clone(),
        );
        registry.register(
            "streams_opened",
            "Streams whose protocol was negotiated, by protocol and direction",
            f.streams_opened.clone(),
        );
        registry.register(
            "streams_closed",
            "Negotiated streams closed, by protocol and direction",
            f.streams_closed.clone(),
        );
        registry.register(
            "streams_open",
            "Negotiated streams open now, by protocol and direction",
            f.streams_open.clone(),
        );
        registry.register(
            "inbound_streams_refused",
            "Inbound streams dropped before a protocol was agreed (no handler, over a limit, failed or timed-out negotiation)",
            f.streams_refused.clone(),
        );
        registry.register_with_unit(
            "stream",
            "Bytes read from (received) and written to (sent) negotiated streams, by protocol",
            Unit::Bytes,
            f.bytes.clone(),
        );
        registry.register(
            "identify_received",
            "Identify messages: our request after connecting, or a push from the remote; by outcome",
            f.identify.clone(),
        );
        registry.register_with_unit(
            "ping_rtt",
            "Round-trip times of outbound pings",
            Unit::Seconds,
            f.ping_rtt.clone(),
        );
        registry.register(
            "ping_failures",
            "Outbound pings that failed or timed out",
            f.ping_failures.clone(),
        );
        f
    }

    pub(crate) fn protocol_labels(&self) -> &ProtocolLabels {
        &self.labels
    }
}

/// Counts one stream's bytes and its close.
#[derive(Debug)]
struct Meter {
    sent: Counter,
    received: Counter,
    closed: Counter,
    open: Gauge,
}

impl StreamMeter for Meter {
    fn sent(&self, bytes: usize) {
        self.sent.inc_by(bytes as u64);
    }

    fn received(&self, bytes: usize) {
        self.received.inc_by(bytes as u64);
    }

    fn closed(&self) {
        self.closed.inc();
        self.open.dec();
    }
}

impl Observer for Families {
    fn connection_opened(&self, connection: &ConnectionInfo, established_in: Duration) {
        let labels = ConnectionLabels::of(connection);
        self.establishment
            .get_or_create(&labels)
            .observe(established_in.as_secs_f64());
        self.connections_opened.get_or_create(&labels).inc();
    }

    fn connection_closed(&self, connection: &ConnectionInfo) {
        self.connections_closed
            .get_or_create(&ConnectionLabels::of(connection))
            .inc();
    }

    fn dial_failed(&self, error: &DialError) {
        let reason = dial_reason(error);
        self.dial_errors
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn inbound_refused(&self, error: &DialError) {
        let reason = dial_reason(error);
        self.inbound_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn inbound_upgrade_failed(&self, error: &weft_upgrader::UpgradeError) {
        let step = upgrade_step(error);
        self.upgrade_failures
            .get_or_create(&StepLabel { step })
            .inc();
    }

    fn inbound_evicted(&self) {
        self.evicted.inc();
    }

    fn stream_opened(&self, stream: &StreamInfo<'_>) -> Option<Arc<dyn StreamMeter>> {
        let protocol = self.labels.label(stream.protocol, stream.handler);
        let bytes = |direction| {
            self.bytes
                .get_or_create(&ByteLabels {
                    protocol: protocol.clone(),
                    direction,
                })
                .clone()
        };
        let (sent, received) = (bytes("sent"), bytes("received"));
        let labels = StreamLabels {
            protocol,
            direction: direction(stream.direction),
        };
        self.streams_opened.get_or_create(&labels).inc();
        let open = self.streams_open.get_or_create(&labels).clone();
        open.inc();
        Some(Arc::new(Meter {
            sent,
            received,
            closed: self.streams_closed.get_or_create(&labels).clone(),
            open,
        }))
    }

    fn inbound_stream_refused(&self) {
        self.streams_refused.inc();
    }

    fn identify_received(&self, push: bool, ok: bool) {
        let labels = IdentifyLabels {
            kind: if push { "push" } else { "request" },
            outcome: if ok { "ok" } else { "error" },
        };
        self.identify.get_or_create(&labels).inc();
    }

    fn ping(&self, rtt: Option<Duration>) {
        match rtt {
            Some(rtt) => self.ping_rtt.observe(rtt.as_secs_f64()),
            None => {
                self.ping_failures.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_upgrader::{UpgradeError, UpgradeStep};

    fn lines(registry: &Registry) -> Vec<String> {
        crate::encode(registry)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn failures_are_counted_under_their_bounded_labels() {
        let mut registry = Registry::default();
        let families = Families::register(&mut registry, ProtocolLabels::default());
        families.ping(None);
        families.ping(Some(Duration::from_millis(3)));
        families.identify_received(true, false);
        families.inbound_evicted();
        families.inbound_stream_refused();
        families.inbound_upgrade_failed(&UpgradeError::Timeout {
            step: UpgradeStep::Handshake,
            after: Duration::from_secs(20),
        });
        families.inbound_refused(&DialError::Shutdown);
        families.dial_failed(&DialError::SelfDial);
        let got = lines(&registry);
        for expected in [
            "ping_failures_total 1",
            "ping_rtt_seconds_count 1",
            "identify_received_total{kind=\"push\",outcome=\"error\"} 1",
            "inbound_handshakes_evicted_total 1",
            "inbound_streams_refused_total 1",
            "inbound_upgrade_failures_total{step=\"handshake\"} 1",
            "inbound_connections_refused_total{reason=\"shutdown\"} 1",
            "dial_errors_total{reason=\"self_dial\"} 1",
        ] {
            assert!(
                got.iter().any(|l| l == expected),
                "{expected} not in {got:#?}"
            );
        }
    }

    #[test]
    fn a_stream_meter_counts_bytes_and_its_close() {
        let mut registry = Registry::default();
        let families = Families::register(&mut registry, ProtocolLabels::default());
        let info = StreamInfo::new("/x/1", Some("/x"), weft_host::Direction::Inbound);
        let meter = families.stream_opened(&info).unwrap();
        meter.received(10);
        meter.sent(4);
        meter.sent(4);
        let open = "streams_open{protocol=\"/x\",direction=\"inbound\"}";
        assert!(lines(&registry).contains(&format!("{open} 1")));
        meter.closed();
        let got = lines(&registry);
        for expected in [
            format!("{open} 0"),
            "streams_opened_total{protocol=\"/x\",direction=\"inbound\"} 1".to_string(),
            "streams_closed_total{protocol=\"/x\",direction=\"inbound\"} 1".to_string(),
            "stream_bytes_total{protocol=\"/x\",direction=\"sent\"} 8".to_string(),
            "stream_bytes_total{protocol=\"/x\",direction=\"received\"} 10".to_string(),
        ] {
            assert!(got.contains(&expected), "{expected} not in {got:#?}");
        }
    }
}
