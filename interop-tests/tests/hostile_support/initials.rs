//! Abandoned QUIC handshakes: the first datagram of a real handshake (an Initial with a
//! libp2p TLS ClientHello, made by quinn-proto), sent once from a fresh UDP port that
//! is closed right after, so the listener's answer is never read and the handshake
//! never goes on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::Keypair;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{ClientConfig, Endpoint, EndpointConfig};
use weft_security_tls::{expected_peer_server_name, SharedTlsConfigs};

/// Makes Initials for a target.
pub struct Initials {
    client: ClientConfig,
    server_name: String,
}

impl Initials {
    /// Initials from a fresh libp2p identity, for any peer.
    pub fn new() -> Self {
        let tls = SharedTlsConfigs::new(&Keypair::generate_ed25519()).expect("TLS configs");
        let crypto = QuicClientConfig::try_from(tls.client).expect("a QUIC-capable TLS config");
        Initials {
            client: ClientConfig::new(Arc::new(crypto)),
            server_name: expected_peer_server_name(None),
        }
    }

    /// The first datagram of a new handshake with `target` (its own connection ids,
    /// its own ClientHello).
    pub fn next(&self, target: SocketAddr) -> Vec<u8> {
        // A new sans-I/O endpoint each time, so nothing accumulates on our side.
        let mut endpoint = Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None);
        let now = Instant::now();
        let (_handle, mut connection) = endpoint
            .connect(now, self.client.clone(), target, &self.server_name)
            .expect("a client connection");
        let mut datagram = Vec::new();
        let transmit = connection
            .poll_transmit(now, 1, &mut datagram)
            .expect("the client's Initial");
        datagram.truncate(transmit.size);
        datagram
    }
}

/// How a flood went.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodReport {
    /// Initials sent.
    pub sent: u64,
    /// Sends that failed locally.
    pub failed: u64,
}

/// Sends Initials to `target`, each from a new socket on 127.0.0.`2..2+ips` (a new
/// source port every time), at most `per_second`, until `stop` is set or `limit`
/// passes. Blocking: run it on its own thread.
pub fn flood(
    target: SocketAddr,
    ips: u8,
    per_second: u32,
    limit: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> FloodReport {
    let initials = Initials::new();
    let started = Instant::now();
    let gap = Duration::from_secs(1) / per_second.max(1);
    let mut report = FloodReport::default();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        let ip = Ipv4Addr::new(127, 0, 0, 2 + (i % u64::from(ips.max(1))) as u8);
        i += 1;
        let datagram = initials.next(target);
        let ok = UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .and_then(|socket| socket.send_to(&datagram, target))
            .is_ok();
        if ok {
            report.sent += 1;
            sent.fetch_add(1, Ordering::Relaxed);
        } else {
            report.failed += 1;
        }
        // Paced against the clock, not the work, so slow Initials do not slow the rate.
        let due = started + gap * u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    report
}
