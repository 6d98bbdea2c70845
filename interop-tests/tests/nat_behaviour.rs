//! Each NAT kind of the lab behaves as its name says, in the kernel: plain UDP and TCP
//! sockets inside the namespaces probe mapping (one external port towards every
//! destination, or not) and filtering (who outside gets through to a mapping).
//! One lab per test, one peer behind each kind; the expectations are the table below.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use weft_interop_tests::nat::{require_lab, Filtering, Lab, Mapping, NatKind, NatPeer};

/// What must arrive in time.
const WAIT: Duration = Duration::from_secs(5);
/// How long to listen for UDP that must not arrive, after a packet that must.
const QUIET: Duration = Duration::from_millis(300);
/// How long a TCP connect that must be dropped is given.
const SYN_WAIT: Duration = Duration::from_secs(1);
/// The inside endpoint's port (each peer has its own namespace).
const INSIDE_PORT: u16 = 4000;

/// One row per kind: (kind, same external port towards three destinations, a packet
/// from another port of a contacted host gets in, a packet from a host never
/// contacted gets in).
const TABLE: [(NatKind, bool, bool, bool); 4] = [
    (NatKind::FullCone, true, true, true),
    (NatKind::AddressRestricted, true, true, false),
    (NatKind::PortRestricted, true, false, false),
    (NatKind::Symmetric, false, false, false),
];

fn lab() -> Option<Lab> {
    if !require_lab() {
        return None;
    }
    let kinds: Vec<NatKind> = TABLE.iter().map(|row| row.0).collect();
    Some(Lab::new(&kinds).expect("the lab builds"))
}

fn inside_any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

fn row(kind: NatKind) -> (bool, bool, bool) {
    let (_, same_port, other_port, other_host) = TABLE
        .iter()
        .copied()
        .find(|r| r.0 == kind)
        .expect("every kind has a row");
    (same_port, other_port, other_host)
}

#[test]
fn the_published_behaviour_of_each_kind_is_the_table() {
    for (kind, same_port, other_port, other_host) in TABLE {
        assert_eq!(
            kind.mapping() == Mapping::EndpointIndependent,
            same_port,
            "{kind}"
        );
        let filtering = match (other_port, other_host) {
            (true, true) => Filtering::EndpointIndependent,
            (true, false) => Filtering::AddressDependent,
            _ => Filtering::AddressAndPortDependent,
        };
        assert_eq!(kind.filtering(), filtering, "{kind}");
    }
}

/// The external addresses the public servers `dests` see for one inside UDP socket.
async fn udp_external_addrs(lab: &Lab, peer: &NatPeer, dests: &[SocketAddr]) -> Vec<SocketAddr> {
    let inside = peer.inside().udp_socket(inside_any(INSIDE_PORT)).unwrap();
    let mut seen = Vec::new();
    for &dest in dests {
        let server = public_udp(lab, dest);
        inside.send_to(b"map", dest).await.unwrap();
        let mut buf = [0u8; 16];
        let (_, from) = tokio::time::timeout(WAIT, server.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{}: nothing reached {dest}", peer.kind()))
            .unwrap();
        seen.push(from);
    }
    seen
}

#[tokio::test]
async fn udp_mapping_is_endpoint_independent_except_behind_a_symmetric_nat() {
    let Some(lab) = lab() else { return };
    // Two hosts, and a second port of the first.
    let dests = [
        lab.public_addr(0, 7000),
        lab.public_addr(1, 7000),
        lab.public_addr(0, 7001),
    ];
    for peer in lab.peers() {
        let seen = udp_external_addrs(&lab, peer, &dests).await;
        assert!(
            seen.iter().all(|a| a.ip() == peer.wan_ip()),
            "{}: {seen:?}",
            peer.kind()
        );
        let same = seen.iter().all(|a| a.port() == seen[0].port());
        assert_eq!(same, row(peer.kind()).0, "{}: {seen:?}", peer.kind());
    }
}

/// A UDP socket of the public namespace bound to `addr`. A failure says what holds
/// the namespace's UDP ports (`ss`), as a port that is taken here is a lab fault.
fn public_udp(lab: &Lab, addr: SocketAddr) -> tokio::net::UdpSocket {
    lab.public().udp_socket(addr).unwrap_or_else(|e| {
        let sockets = lab
            .public()
            .std_command("ss")
            .args(["-uanp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(ss: {e})"));
        panic!(
            "binding {addr} in {}: {e}; its UDP sockets:\n{sockets}",
            lab.id()
        )
    })
}

/// Which of the two probes (another port of the contacted host, another host) reach
/// an inside UDP endpoint that sent to one public server.
async fn udp_probes_let_in(lab: &Lab, peer: &NatPeer) -> (bool, bool) {
    let inside = peer.inside().udp_socket(inside_any(INSIDE_PORT)).unwrap();
    let contacted = public_udp(lab, lab.public_addr(0, 7000));
    inside
        .send_to(b"out", lab.public_addr(0, 7000))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let (_, external) = tokio::time::timeout(WAIT, contacted.recv_from(&mut buf))
        .await
        .expect("the contacted server hears the inside")
        .unwrap();
    let other_port = public_udp(lab, lab.public_addr(0, 7001));
    let other_host = public_udp(lab, lab.public_addr(2, 7000));
    other_port.send_to(b"other-port", external).await.unwrap();
    other_host.send_to(b"other-host", external).await.unwrap();
    // The contacted server's answer always gets in: once it is there, the probes
    // (sent earlier, on the same path) have arrived or were dropped.
    contacted.send_to(b"reply", external).await.unwrap();
    let mut got = Vec::new();
    let mut deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let Ok(read) = tokio::time::timeout_at(deadline, inside.recv_from(&mut buf)).await else {
            break;
        };
        let (n, _) = read.unwrap();
        let label = String::from_utf8_lossy(&buf[..n]).into_owned();
        if label == "reply" {
            deadline = tokio::time::Instant::now() + QUIET;
        }
        got.push(label);
    }
    assert!(
        got.iter().any(|l| l == "reply"),
        "{}: the contacted server's reply did not get in: {got:?}",
        peer.kind()
    );
    (
        got.iter().any(|l| l == "other-port"),
        got.iter().any(|l| l == "other-host"),
    )
}

#[tokio::test]
async fn udp_filtering_lets_in_whom_the_kind_allows() {
    let Some(lab) = lab() else { return };
    for peer in lab.peers() {
        let (_, other_port, other_host) = row(peer.kind());
        assert_eq!(
            udp_probes_let_in(&lab, peer).await,
            (other_port, other_host),
            "{}: (another port of the contacted host, another host) got in",
            peer.kind()
        );
    }
}

/// Connects from the inside endpoint to each of `dests` (listeners in the public
/// namespace) and returns the external address each listener saw.
async fn tcp_external_addrs(lab: &Lab, peer: &NatPeer, dests: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    for &dest in dests {
        let listener = lab.public().tcp_socket(dest).unwrap().listen(8).unwrap();
        let socket = peer.inside().tcp_socket(inside_any(INSIDE_PORT)).unwrap();
        let stream = tokio::time::timeout(WAIT, socket.connect(dest))
            .await
            .unwrap_or_else(|_| panic!("{}: no connection to {dest}", peer.kind()))
            .unwrap();
        let (_, from) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        seen.push(from);
        kept.push((stream, listener));
    }
    seen
}

#[tokio::test]
async fn tcp_mapping_is_endpoint_independent_except_behind_a_symmetric_nat() {
    let Some(lab) = lab() else { return };
    let dests = [
        lab.public_addr(0, 7000),
        lab.public_addr(1, 7000),
        lab.public_addr(0, 7001),
    ];
    for peer in lab.peers() {
        let seen = tcp_external_addrs(&lab, peer, &dests).await;
        assert!(
            seen.iter().all(|a| a.ip() == peer.wan_ip()),
            "{}: {seen:?}",
            peer.kind()
        );
        let same = seen.iter().all(|a| a.port() == seen[0].port());
        assert_eq!(same, row(peer.kind()).0, "{}: {seen:?}", peer.kind());
    }
}

/// Whether a connection from `from` (a public address, any port) to `external` is
/// accepted within [`SYN_WAIT`].
async fn tcp_gets_in(lab: &Lab, from: std::net::Ipv4Addr, external: SocketAddr) -> bool {
    let socket = lab
        .public()
        .tcp_socket(SocketAddr::from((from, 0)))
        .unwrap();
    matches!(
        tokio::time::timeout(SYN_WAIT, socket.connect(external)).await,
        Ok(Ok(_))
    )
}

/// Which of the two probes (another port of the contacted host, another host) can
/// connect to an inside endpoint that listens on its port and connected out from it.
async fn tcp_probes_let_in(lab: &Lab, peer: &NatPeer) -> (bool, bool) {
    let inside_listener = peer
        .inside()
        .tcp_socket(inside_any(INSIDE_PORT))
        .unwrap()
        .listen(8)
        .unwrap();
    // A port per peer: the probes of all peers run at once, and SO_REUSEPORT
    // listeners on one address would share their connections.
    let port = 7000 + u16::try_from(peer.index()).unwrap();
    let dest = lab.public_addr(0, port);
    let contacted = lab.public().tcp_socket(dest).unwrap().listen(8).unwrap();
    let out = peer.inside().tcp_socket(inside_any(INSIDE_PORT)).unwrap();
    let _out = tokio::time::timeout(WAIT, out.connect(dest))
        .await
        .expect("the inside connects out")
        .unwrap();
    let (_, external) = tokio::time::timeout(WAIT, contacted.accept())
        .await
        .unwrap()
        .unwrap();
    let (other_port, other_host) = tokio::join!(
        tcp_gets_in(lab, lab.public_ip(0), external),
        tcp_gets_in(lab, lab.public_ip(2), external),
    );
    drop(inside_listener);
    (other_port, other_host)
}

#[tokio::test]
async fn tcp_filtering_lets_in_whom_the_kind_allows() {
    let Some(lab) = lab() else { return };
    let outcomes = join_all(lab.peers().iter().map(|p| tcp_probes_let_in(&lab, p))).await;
    for (peer, outcome) in lab.peers().iter().zip(outcomes) {
        let (_, other_port, other_host) = row(peer.kind());
        assert_eq!(
            outcome,
            (other_port, other_host),
            "{}: (another port of the contacted host, another host) got in",
            peer.kind()
        );
    }
}

#[tokio::test]
async fn peers_behind_two_nats_reach_each_others_wan_only_through_a_mapping() {
    let Some(lab) = lab() else { return };
    // Full cone (peer 0) lets in anyone who knows the mapping, even another NAT'd peer.
    let full_cone = lab.peer(0);
    let symmetric = lab.peer(3);
    let inside = full_cone
        .inside()
        .udp_socket(inside_any(INSIDE_PORT))
        .unwrap();
    let server = public_udp(&lab, lab.public_addr(1, 7100));
    inside
        .send_to(b"map", lab.public_addr(1, 7100))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let (_, external) = tokio::time::timeout(WAIT, server.recv_from(&mut buf))
        .await
        .expect("the server hears the inside")
        .unwrap();
    let far = symmetric.inside().udp_socket(inside_any(5000)).unwrap();
    far.send_to(b"across", external).await.unwrap();
    let (n, from) = tokio::time::timeout(WAIT, inside.recv_from(&mut buf))
        .await
        .expect("a packet across two NATs")
        .unwrap();
    assert_eq!(&buf[..n], b"across");
    assert_eq!(
        from.ip(),
        symmetric.wan_ip(),
        "the far side's NAT rewrote it"
    );
}
