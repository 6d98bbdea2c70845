//! `weft listen --metrics` during an interop run: rust-libp2p's contract peer dials
//! it twice (identify, ping, a 1 MiB echo each), then an HTTP client scrapes
//! `/metrics`, parses it with `prometheus-parse` and checks the figures against the
//! runs: connections by transport, security and muxer, echo bytes exactly, streams
//! by protocol, identify.

use http_body_util::{BodyExt, Empty};
use prometheus_parse::{Sample, Scrape, Value};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use weft_interop_tests::{run_dialer, Impl, Security, WeftListen};

const WAIT: Duration = Duration::from_secs(60);
const ECHO: u64 = 1 << 20;

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
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition")
        .samples
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_during_an_interop_run_matches_the_runs() {
    let listener = WeftListen::defaults()
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .spawn()
        .await
        .expect("weft listen --metrics starts");
    let started = Instant::now();
    let endpoint = loop {
        let log = listener.stderr();
        // Whole lines only: the last one may still be arriving.
        let whole = log.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        if let Some(url) = whole
            .map(str::trim_end)
            .find_map(|l| l.strip_prefix("metrics: http://"))
        {
            break url.trim_end_matches("/metrics").to_string();
        }
        assert!(started.elapsed() < WAIT, "no metrics address in:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    const RUNS: usize = 2;
    for _ in 0..RUNS {
        let report = run_dialer(Impl::Rust, listener.addr(), Security::Noise, ECHO)
            .await
            .expect("the rust-libp2p dialer succeeds");
        assert_eq!(report.echo_bytes, ECHO, "{report:?}");
    }

    let inbound = [
        ("direction", "inbound"),
        ("transport", "tcp"),
        ("security", "/noise"),
        ("muxer", "/yamux/1.0.0"),
        ("ip_version", "ip4"),
    ];
    // The dialers have exited: wait for the listener to see both connections close.
    let started = Instant::now();
    let samples = loop {
        let samples = scrape(&endpoint).await;
        if value(&samples, "weft_connections_closed_total", &inbound) == RUNS as f64 {
            break samples;
        }
        assert!(started.elapsed() < WAIT, "the connections did not close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let n = |x: u64| x as f64;
    assert_eq!(
        value(&samples, "weft_connections_opened_total", &inbound),
        RUNS as f64
    );
    assert_eq!(value(&samples, "weft_connections_open", &inbound), 0.0);
    let echo_in = [("protocol", "/echo/1.0.0"), ("direction", "inbound")];
    assert_eq!(
        value(&samples, "weft_streams_opened_total", &echo_in),
        RUNS as f64
    );
    for way in ["sent", "received"] {
        assert_eq!(
            value(
                &samples,
                "weft_stream_bytes_total",
                &[("protocol", "/echo/1.0.0"), ("direction", way)]
            ),
            n(RUNS as u64 * ECHO),
            "echo bytes {way}"
        );
    }
    // The peer pings once per run (a stream each; libp2p's ping keeps its stream for
    // the connection's life, so at least one).
    assert!(
        value(
            &samples,
            "weft_streams_opened_total",
            &[("protocol", "/ipfs/ping/1.0.0"), ("direction", "inbound")]
        ) >= RUNS as f64
    );
    assert_eq!(
        value(
            &samples,
            "weft_identify_received_total",
            &[("kind", "request"), ("outcome", "ok")]
        ),
        RUNS as f64
    );
    assert_eq!(
        value(
            &samples,
            "weft_inbound_upgrade_failures_total",
            &[("step", "handshake")]
        ),
        0.0
    );
}
