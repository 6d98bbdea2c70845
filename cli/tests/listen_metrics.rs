//! `weft listen --metrics`: an HTTP client scrapes the running listener after real
//! `weft dial` runs and a crowd of hostile handshakes, parses the exposition with
//! `prometheus-parse`, and checks the figures against what happened.

mod support;

use http_body_util::{BodyExt, Empty};
use prometheus_parse::{Sample, Scrape, Value};
use std::process::Stdio;
use std::time::Duration;
use support::{listen_command, run_weft, spawn_listener, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

/// Starts `weft listen --metrics 127.0.0.1:0`, under a descriptor limit of `nofile`
/// (with `prlimit`, util-linux) if given; returns it, its address and the metrics
/// endpoint's `host:port`.
async fn listen(nofile: Option<u32>) -> (Child, String, String) {
    let command = listen_command(&["--metrics", "127.0.0.1:0"], nofile, Stdio::piped());
    let (mut child, addr) = spawn_listener(command).await;
    let stderr = child.stderr.take().expect("piped stderr");
    let mut errors = BufReader::new(stderr).lines();
    let endpoint = tokio::time::timeout(WAIT, async {
        while let Some(line) = errors.next_line().await.expect("stderr readable") {
            if let Some(url) = line.strip_prefix("metrics: http://") {
                return url.trim_end_matches("/metrics").to_string();
            }
        }
        panic!("weft listen ended without serving metrics");
    })
    .await
    .expect("the metrics address in time");
    // Keep draining stderr so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = errors.next_line().await {} });
    (child, addr, endpoint)
}

/// GET http://endpoint/metrics: the status, the content type, the parsed samples.
async fn scrape(endpoint: &str) -> Vec<Sample> {
    let tcp = TcpStream::connect(endpoint)
        .await
        .expect("metrics port open");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("HTTP handshake");
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .uri("/metrics")
        .header("host", endpoint)
        .body(Empty::<bytes::Bytes>::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    assert!(text.ends_with("# EOF\n"));
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition")
        .samples
}

/// The value of the one sample `name` whose labels include `labels` (0 if none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map_or(0.0, |s| match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(b) => b.last().map_or(0.0, |b| b.count),
        Value::Summary(_) => panic!("no summaries here"),
    })
}

async fn dial(addr: &str, pings: usize, echo: usize) {
    let (pings, echo) = (pings.to_string(), echo.to_string());
    let out = run_weft(&["dial", addr, "--ping", &pings, "--echo", &echo]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A peer that opens TCP and proposes a multistream-select version nobody speaks.
async fn hostile_handshake(tcp_addr: &str) {
    let mut s = TcpStream::connect(tcp_addr).await.expect("connects");
    let header = b"/multistream/9.9.9\n";
    let mut frame = vec![header.len() as u8];
    frame.extend_from_slice(header);
    let _ = s.write_all(&frame).await;
    let mut rest = Vec::new();
    // The listener answers its own header and hangs up.
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
}

/// `/ip4/127.0.0.1/tcp/PORT/p2p/...` -> `127.0.0.1:PORT`.
fn tcp_of(addr: &str) -> String {
    let parts: Vec<&str> = addr.split('/').collect();
    format!("{}:{}", parts[2], parts[4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_of_weft_listen_counts_what_happened() {
    let (mut child, addr, endpoint) = listen(None).await;

    // Two honest peers (two `weft dial` processes), then twenty hostile handshakes.
    const DIALS: usize = 2;
    const PINGS: usize = 3;
    const ECHO: usize = 100_000;
    const HOSTILE: usize = 20;
    for _ in 0..DIALS {
        dial(&addr, PINGS, ECHO).await;
    }
    let tcp = tcp_of(&addr);
    futures::future::join_all((0..HOSTILE).map(|_| hostile_handshake(&tcp))).await;

    let inbound_tcp = [
        ("direction", "inbound"),
        ("transport", "tcp"),
        ("security", "/noise"),
        ("muxer", "/yamux/1.0.0"),
        ("ip_version", "ip4"),
    ];
    // The dialers have exited: wait until the listener has seen both connections close.
    let deadline = tokio::time::Instant::now() + WAIT;
    let samples = loop {
        let samples = scrape(&endpoint).await;
        let closed = value(&samples, "weft_connections_closed_total", &inbound_tcp);
        let failed = value(
            &samples,
            "weft_inbound_upgrade_failures_total",
            &[("step", "negotiate_security")],
        );
        if closed == DIALS as f64 && failed == HOSTILE as f64 {
            break samples;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed {closed}, failed upgrades {failed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let n = |x: usize| x as f64;
    assert_eq!(
        value(&samples, "weft_connections_opened_total", &inbound_tcp),
        n(DIALS)
    );
    assert_eq!(
        value(
            &samples,
            "weft_connection_establishment_duration_seconds_count",
            &inbound_tcp
        ),
        n(DIALS)
    );
    assert_eq!(value(&samples, "weft_connections_open", &inbound_tcp), 0.0);
    assert_eq!(value(&samples, "weft_connected_peers", &[]), 0.0);
    let echo_in = [("protocol", "/echo/1.0.0"), ("direction", "inbound")];
    assert_eq!(
        value(&samples, "weft_streams_opened_total", &echo_in),
        n(DIALS)
    );
    assert_eq!(
        value(&samples, "weft_streams_closed_total", &echo_in),
        n(DIALS)
    );
    for way in ["sent", "received"] {
        assert_eq!(
            value(
                &samples,
                "weft_stream_bytes_total",
                &[("protocol", "/echo/1.0.0"), ("direction", way)]
            ),
            n(DIALS * ECHO),
            "echo bytes {way}"
        );
    }
    // One stream per ping, 32 bytes each way.
    let ping_in = [("protocol", "/ipfs/ping/1.0.0"), ("direction", "inbound")];
    assert_eq!(
        value(&samples, "weft_streams_opened_total", &ping_in),
        n(DIALS * PINGS)
    );
    assert_eq!(
        value(
            &samples,
            "weft_stream_bytes_total",
            &[("protocol", "/ipfs/ping/1.0.0"), ("direction", "received")]
        ),
        n(DIALS * PINGS * 32)
    );
    assert_eq!(
        value(
            &samples,
            "weft_identify_received_total",
            &[("kind", "request"), ("outcome", "ok")]
        ),
        n(DIALS)
    );
    // Every family of the issue is there.
    for family in [
        "weft_connections_opened_total",
        "weft_connections_closed_total",
        "weft_connection_establishment_duration_seconds_count",
        "weft_streams_opened_total",
        "weft_stream_bytes_total",
        "weft_resource_usage",
        "weft_resource_limit",
        "weft_resource_denied_total",
        "weft_resource_live_scopes",
        "weft_identify_received_total",
        "weft_connected_peers",
    ] {
        assert!(
            samples.iter().any(|s| s.metric == family),
            "{family} missing"
        );
    }
    assert_eq!(
        value(
            &samples,
            "weft_resource_usage",
            &[("scope", "system"), ("resource", "connections_inbound")]
        ),
        0.0,
        "every connection was given back"
    );
    // No denial happened in this run: the counters are there, at zero.
    let denied: f64 = samples
        .iter()
        .filter(|s| s.metric == "weft_resource_denied_total")
        .map(|s| match s.value {
            Value::Counter(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(denied, 0.0);
    assert!(child.try_wait().expect("child status").is_none());
    child.kill().await.expect("kill weft listen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_idle_sockets_shows_up_as_denials_and_evictions() {
    // 48 descriptors: the resource manager gives weft 24, the transient scope (where
    // pending handshakes are charged) 6; the seventh idle socket is refused by it, and
    // the stalest pending handshake is evicted to let the newcomer in.
    const NOFILE: u32 = 48;
    let (mut child, addr, endpoint) = listen(Some(NOFILE)).await;
    let tcp = tcp_of(&addr);
    let mut idle = Vec::new();
    for _ in 0..2 * NOFILE {
        idle.push(TcpStream::connect(&tcp).await.expect("connects"));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let (denied, evicted) = loop {
        let samples = scrape(&endpoint).await;
        let denied = value(
            &samples,
            "weft_resource_denied_total",
            &[("scope", "transient"), ("resource", "fds")],
        );
        let evicted = value(&samples, "weft_inbound_handshakes_evicted_total", &[]);
        if denied > 0.0 && evicted > 0.0 {
            break (denied, evicted);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "denied {denied}, evicted {evicted}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every eviction answers a refusal that eviction can help with.
    assert!(evicted <= denied, "evicted {evicted} > denied {denied}");
    // An honest peer still gets in, and is counted.
    dial(&addr, 1, 0).await;
    let samples = scrape(&endpoint).await;
    assert!(
        value(
            &samples,
            "weft_connections_opened_total",
            &[("direction", "inbound"), ("transport", "tcp")]
        ) >= 1.0
    );
    drop(idle);
    assert!(child.try_wait().expect("child status").is_none());
    child.kill().await.expect("kill weft listen");
}
