//! The observer hook (feature `metrics-hook`) is told synchronously about connections,
//! dial failures, streams and their bytes, identify and ping, over real TCP.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_host::{ConnectionInfo, DialError, Host, Observer, StreamInfo, StreamMeter};

/// Everything the observer was told, as plain counts.
#[derive(Default)]
struct Recorder {
    opened: Mutex<Vec<(ConnectionInfo, Duration)>>,
    closed: Mutex<Vec<ConnectionInfo>>,
    dial_errors: Mutex<Vec<String>>,
    streams: Mutex<Vec<Seen>>,
    identify_ok: AtomicU64,
    pings: Mutex<Vec<Option<Duration>>>,
}

/// One stream: negotiated id, handler key, direction, its meter.
type Seen = (String, Option<String>, weft_host::Direction, Arc<Bytes>);

#[derive(Default)]
struct Bytes {
    sent: AtomicU64,
    received: AtomicU64,
    closed: AtomicU64,
}

impl StreamMeter for Bytes {
    fn sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    fn received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    fn closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Observer for Recorder {
    fn connection_opened(&self, connection: &ConnectionInfo, established_in: Duration) {
        self.opened
            .lock()
            .unwrap()
            .push((connection.clone(), established_in));
    }
    fn connection_closed(&self, connection: &ConnectionInfo) {
        self.closed.lock().unwrap().push(connection.clone());
    }
    fn dial_failed(&self, error: &DialError) {
        self.dial_errors.lock().unwrap().push(error.to_string());
    }
    fn stream_opened(&self, stream: &StreamInfo<'_>) -> Option<Arc<dyn StreamMeter>> {
        let bytes = Arc::new(Bytes::default());
        self.streams.lock().unwrap().push((
            stream.protocol.to_string(),
            stream.handler.map(str::to_string),
            stream.direction,
            bytes.clone(),
        ));
        Some(bytes)
    }
    fn identify_received(&self, _push: bool, ok: bool) {
        if ok {
            self.identify_ok.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn ping(&self, rtt: Option<Duration>) {
        self.pings.lock().unwrap().push(rtt);
    }
}

impl Recorder {
    /// Total (sent, received, closed) of the streams of `protocol`.
    fn bytes_of(&self, protocol: &str) -> (u64, u64, u64) {
        let streams = self.streams.lock().unwrap();
        streams
            .iter()
            .filter(|s| s.0 == protocol)
            .fold((0, 0, 0), |(s, r, c), (_, _, _, b)| {
                (
                    s + b.sent.load(Ordering::Relaxed),
                    r + b.received.load(Ordering::Relaxed),
                    c + b.closed.load(Ordering::Relaxed),
                )
            })
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "{what} did not happen in time");
}

#[tokio::test]
async fn the_observer_sees_connections_streams_bytes_identify_and_ping() {
    let server_seen = Arc::new(Recorder::default());
    let client_seen = Arc::new(Recorder::default());
    let server = Host::builder()
        .observer(server_seen.clone())
        .build()
        .unwrap();
    // A match handler: its registration key, not the proposed id, is what it reports.
    server.set_match_handler(
        "/echo-any",
        |p| p.starts_with("/echo/"),
        |mut s| async move {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        },
    );
    let addr = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone();
    let client = Host::builder()
        .observer(client_seen.clone())
        .build()
        .unwrap();

    // A dial to a closed port fails once, with its reason.
    let closed_port: weft_host::Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    assert!(client.dial(&closed_port).await.is_err());
    assert_eq!(client_seen.dial_errors.lock().unwrap().len(), 1);

    client
        .dial(&addr.with(weft_host::Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    let payload = vec![7u8; 100_000];
    let mut s = client
        .new_stream(server.peer_id(), &["/echo/1.0.0"])
        .await
        .unwrap();
    s.write_all(&payload).await.unwrap();
    s.close().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, payload);
    drop(s);
    let rtt = client.ping(server.peer_id()).await.unwrap();

    wait_until("both identify requests", || {
        server_seen.identify_ok.load(Ordering::Relaxed) == 1
            && client_seen.identify_ok.load(Ordering::Relaxed) == 1
    })
    .await;
    wait_until("the echo stream closes on the server", || {
        server_seen.bytes_of("/echo/1.0.0").2 == 1
    })
    .await;
    let n = payload.len() as u64;
    assert_eq!(client_seen.bytes_of("/echo/1.0.0"), (n, n, 1));
    assert_eq!(server_seen.bytes_of("/echo/1.0.0"), (n, n, 1));
    {
        let streams = server_seen.streams.lock().unwrap();
        let echo = streams.iter().find(|s| s.0 == "/echo/1.0.0").unwrap();
        assert_eq!(echo.1.as_deref(), Some("/echo-any"));
        assert_eq!(echo.2, weft_host::Direction::Inbound);
        // The client has no handler for it: no key.
        let streams = client_seen.streams.lock().unwrap();
        let echo = streams.iter().find(|s| s.0 == "/echo/1.0.0").unwrap();
        assert_eq!(
            (echo.1.as_deref(), echo.2),
            (None, weft_host::Direction::Outbound)
        );
        // Built-ins carry their own key.
        assert!(streams
            .iter()
            .any(|s| s.0 == "/ipfs/id/1.0.0" && s.1.as_deref() == Some("/ipfs/id/1.0.0")));
    }
    assert_eq!(*client_seen.pings.lock().unwrap(), vec![Some(rtt)]);

    let opened = client_seen.opened.lock().unwrap().clone();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].0.security, "/noise");
    assert!(opened[0].1 > Duration::ZERO && opened[0].1 < Duration::from_secs(10));
    wait_until("the server registers the connection", || {
        server_seen.opened.lock().unwrap().len() == 1
    })
    .await;

    client.shutdown().await;
    wait_until("both sides see the close", || {
        client_seen.closed.lock().unwrap().len() == 1
            && server_seen.closed.lock().unwrap().len() == 1
    })
    .await;
    let closed = client_seen.closed.lock().unwrap()[0].clone();
    assert_eq!(closed.id, opened[0].0.id);
    // Every stream the observer saw opened was closed.
    let counts: HashMap<_, _> = client_seen
        .streams
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.0.clone(), s.3.closed.load(Ordering::Relaxed)))
        .collect();
    assert!(counts.values().all(|c| *c == 1), "{counts:?}");
    server.shutdown().await;
}
