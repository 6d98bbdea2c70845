//! Two real hosts over TCP, each with metrics; the exposition is parsed with
//! `prometheus-parse` and checked against what the test did.

use futures::stream::{self, StreamExt};
use futures::{AsyncReadExt, AsyncWriteExt};
use prometheus_client::registry::Registry;
use prometheus_parse::{Sample, Scrape, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use weft_host::{Host, Limits, Multiaddr, Protocol, ResourceManager};
use weft_metrics::Metrics;
use weft_resource_manager::ScopeLimit;

struct Node {
    host: Host,
    registry: Arc<Registry>,
}

fn node(limits: Option<Limits>) -> Node {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let mut builder = Host::builder().observer(metrics.observer());
    if let Some(limits) = limits {
        builder = builder.resource_manager(ResourceManager::new(limits));
    }
    let host = builder.build().unwrap();
    metrics.register_host(&mut registry, &host);
    Node {
        host,
        registry: Arc::new(registry),
    }
}

async fn listen(host: &Host) -> Multiaddr {
    host.listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(Protocol::P2p(host.peer_id()))
}

fn scrape(node: &Node) -> Vec<Sample> {
    let text = weft_metrics::encode(&node.registry).unwrap();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap()
        .samples
}

/// The value of the sample `name` whose labels include `labels` (0 if there is none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map_or(0.0, |s| match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
        Value::Summary(_) => panic!("no summaries here"),
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "{what} did not happen in time");
}

fn echo(host: &Host) {
    host.set_handler("/echo/1.0.0", |mut s| async move {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let _ = s.write_all(&buf).await;
        let _ = s.close().await;
    });
}

async fn echo_once(client: &Host, server: &Host, len: usize) {
    let mut s = client
        .new_stream(server.peer_id(), &["/echo/1.0.0"])
        .await
        .unwrap();
    let payload = vec![1u8; len];
    s.write_all(&payload).await.unwrap();
    s.close().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_gauges_match_what_happened() {
    // One inbound /echo/1.0.0 stream per peer at a time: a second is denied by the
    // protocol-peer scope.
    let limits = Limits::auto().with_protocol_peer(
        "/echo/1.0.0",
        ScopeLimit::unlimited().with_streams_inbound(1),
    );
    let server = node(Some(limits));
    echo(&server.host);
    let addr = listen(&server.host).await;
    let client = node(None);

    // A failed dial, then a good one.
    assert!(client
        .host
        .dial(&"/ip4/127.0.0.1/tcp/1".parse().unwrap())
        .await
        .is_err());
    client.host.dial(&addr).await.unwrap();
    for _ in 0..3 {
        echo_once(&client.host, &server.host, 50_000).await;
        // The client reads EOF before the server's handler has dropped its stream,
        // and only one inbound echo stream per peer is allowed: wait for the scope.
        wait_until("the echo stream's scope is released", || {
            value(
                &scrape(&server),
                "weft_streams_open",
                &[("protocol", "/echo/1.0.0"), ("direction", "inbound")],
            ) == 0.0
        })
        .await;
    }
    client.host.ping(server.host.peer_id()).await.unwrap();

    // Hold one echo stream open on the server; the next is refused with na.
    let mut held = client
        .host
        .new_stream(server.host.peer_id(), &["/echo/1.0.0"])
        .await
        .unwrap();
    held.write_all(b"x").await.unwrap();
    held.flush().await.unwrap();
    wait_until("the held stream reaches the server", || {
        value(
            &scrape(&server),
            "weft_streams_open",
            &[("protocol", "/echo/1.0.0"), ("direction", "inbound")],
        ) == 1.0
    })
    .await;
    let mut refused = client
        .host
        .new_stream(server.host.peer_id(), &["/echo/1.0.0"])
        .await
        .unwrap();
    let _ = refused.write_all(b"y").await;
    let mut sink = Vec::new();
    assert!(refused.read_to_end(&mut sink).await.is_err());
    // The server's negotiation ends (and is counted) when the stream goes away.
    drop(refused);

    let inbound_tcp = [
        ("direction", "inbound"),
        ("transport", "tcp"),
        ("security", "/noise"),
        ("muxer", "/yamux/1.0.0"),
        ("ip_version", "ip4"),
    ];
    wait_until(
        "the server counts the denial and the refused stream",
        || {
            let s = scrape(&server);
            value(
                &s,
                "weft_resource_denied_total",
                &[("scope", "protocol_peer"), ("resource", "streams_inbound")],
            ) == 1.0
                && value(&s, "weft_inbound_streams_refused_total", &[]) == 1.0
        },
    )
    .await;
    let s = scrape(&server);
    assert_eq!(
        value(&s, "weft_connections_opened_total", &inbound_tcp),
        1.0
    );
    assert_eq!(value(&s, "weft_connections_open", &inbound_tcp), 1.0);
    assert_eq!(value(&s, "weft_connected_peers", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "weft_connection_establishment_duration_seconds_count",
            &inbound_tcp
        ),
        1.0
    );
    let echo_in = [("protocol", "/echo/1.0.0"), ("direction", "inbound")];
    assert_eq!(value(&s, "weft_streams_opened_total", &echo_in), 4.0);
    assert_eq!(value(&s, "weft_streams_closed_total", &echo_in), 3.0);
    for way in ["sent", "received"] {
        let got = value(
            &s,
            "weft_stream_bytes_total",
            &[("protocol", "/echo/1.0.0"), ("direction", way)],
        );
        let expected = if way == "sent" { 150_000.0 } else { 150_001.0 };
        assert_eq!(got, expected, "{way}");
    }
    assert_eq!(value(&s, "weft_inbound_streams_refused_total", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "weft_resource_usage",
            &[("scope", "system"), ("resource", "connections_inbound")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "weft_resource_protocol_usage",
            &[("protocol", "/echo/1.0.0"), ("resource", "streams_inbound")]
        ),
        1.0
    );
    assert!(
        value(
            &s,
            "weft_resource_limit",
            &[("scope", "system"), ("resource", "memory")]
        ) > 0.0
    );

    let c = scrape(&client);
    assert_eq!(
        value(&c, "weft_dial_errors_total", &[("reason", "transport")]),
        1.0
    );
    assert_eq!(value(&c, "weft_ping_rtt_seconds_count", &[]), 1.0);
    assert_eq!(
        value(
            &c,
            "weft_identify_received_total",
            &[("kind", "request"), ("outcome", "ok")]
        ),
        1.0
    );
    // The client has no handler for /echo/1.0.0 and did not declare it: `other`.
    assert_eq!(
        value(
            &c,
            "weft_streams_opened_total",
            &[("protocol", "other"), ("direction", "outbound")]
        ),
        5.0
    );

    drop(held);
    client.host.shutdown().await;
    wait_until("the server sees the close", || {
        let s = scrape(&server);
        value(&s, "weft_connections_closed_total", &inbound_tcp) == 1.0
            && value(&s, "weft_connected_peers", &[]) == 0.0
    })
    .await;
    let s = scrape(&server);
    assert_eq!(value(&s, "weft_connections_open", &inbound_tcp), 0.0);
    assert_eq!(value(&s, "weft_streams_open", &echo_in), 0.0);
    server.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_distinct_protocol_ids_keep_the_label_set_bounded() {
    let server = node(None);
    server.host.set_match_handler(
        "/flood",
        |p| p.starts_with("/flood/"),
        |mut s| async move {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            let _ = s.close().await;
        },
    );
    let addr = listen(&server.host).await;
    let client = node(None);
    client.host.dial(&addr).await.unwrap();

    const N: usize = 10_000;
    let peer = server.host.peer_id();
    let results: Vec<bool> = stream::iter(0..N)
        .map(|i| {
            let client = client.host.clone();
            async move {
                // Half are served by the match handler, half are unknown (na).
                let id = if i % 2 == 0 {
                    format!("/flood/{i}")
                } else {
                    format!("/unknown/{i}")
                };
                let mut s = client.new_stream(peer, &[id.as_str()]).await.ok()?;
                s.write_all(b"z").await.ok()?;
                s.close().await.ok()?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.ok()
            }
        })
        .buffer_unordered(16)
        .map(|r| r.is_some())
        .collect()
        .await;
    let served = results.iter().filter(|ok| **ok).count();
    assert_eq!(
        served,
        N / 2,
        "the /flood/ half is served, the rest refused"
    );

    wait_until("the server counts every refusal", || {
        value(&scrape(&server), "weft_inbound_streams_refused_total", &[]) == (N / 2) as f64
    })
    .await;
    let s = scrape(&server);
    assert_eq!(
        value(
            &s,
            "weft_streams_opened_total",
            &[("protocol", "/flood"), ("direction", "inbound")]
        ),
        (N / 2) as f64
    );
    let allowed: BTreeSet<&str> = weft_metrics::BUILTIN_PROTOCOLS
        .into_iter()
        .chain(["/flood", weft_metrics::OTHER])
        .collect();
    for (name, samples) in [("server", &s), ("client", &scrape(&client))] {
        let protocols: BTreeSet<&str> = samples
            .iter()
            .filter_map(|s| s.labels.get("protocol"))
            .collect();
        assert!(
            protocols.is_subset(&allowed),
            "{name}: unbounded protocol labels {protocols:?}"
        );
        assert!(
            samples.len() < 400,
            "{name}: {} series after {N} protocol ids",
            samples.len()
        );
    }
    client.host.shutdown().await;
    server.host.shutdown().await;
}

#[tokio::test]
async fn the_server_answers_metrics_in_openmetrics_and_nothing_else() {
    use http_body_util::{BodyExt, Empty};
    let node = node(None);
    let server =
        weft_metrics::MetricsServer::bind("127.0.0.1:0".parse().unwrap(), node.registry.clone())
            .await
            .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());

    let get = |path: &'static str, method: hyper::Method| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    };
    let (status, content_type, body) = get("/metrics", hyper::Method::GET).await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type.as_deref(),
        Some(weft_metrics::CONTENT_TYPE_OPENMETRICS)
    );
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(value(&parsed.samples, "weft_connected_peers", &[]), 0.0);
    assert!(parsed.docs.contains_key("weft_resource_denied"));
    assert_eq!(get("/", hyper::Method::GET).await.0, 404);
    assert_eq!(get("/metrics", hyper::Method::POST).await.0, 405);
    serving.abort();
    node.host.shutdown().await;
}
