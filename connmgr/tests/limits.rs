//! Each hard limit refuses the next connection with the right typed error, leaves the
//! established connections untouched, and gets its slot back when a permit is dropped.

use std::net::IpAddr;

use weft_connmgr::{
    ConnectionId, ConnectionLimits, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy,
    Direction, LimitError, LimitKind, Multiaddr, PeerId,
};

fn manager(limits: ConnectionLimits) -> ConnectionManager {
    ConnectionManager::new(ConnectionManagerConfig::default().with_limits(limits)).unwrap()
}

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn local() -> Multiaddr {
    addr("/ip4/0.0.0.0/tcp/4001")
}

/// Opens an established inbound connection from `remote` to `peer`.
fn open_inbound(m: &ConnectionManager, peer: PeerId, remote: &Multiaddr) -> ConnectionId {
    let permit = m.allow_inbound(&local(), remote).unwrap();
    let id = ConnectionId::next();
    let _ = m
        .established(permit, id, peer, Direction::Inbound, remote)
        .unwrap();
    id
}

/// Opens an established outbound connection to `peer`.
fn open_outbound(m: &ConnectionManager, peer: PeerId) -> ConnectionId {
    let remote = addr("/ip4/10.1.1.1/tcp/4001");
    let permit = m.allow_dial(Some(peer), &remote).unwrap();
    let id = ConnectionId::next();
    let _ = m
        .established(permit, id, peer, Direction::Outbound, &remote)
        .unwrap();
    id
}

fn exceeded(kind: LimitKind, limit: usize, current: usize) -> LimitError {
    LimitError::Exceeded {
        kind,
        limit,
        current,
    }
}

#[test]
fn pending_inbound_limit_refuses_and_releases_on_drop() {
    let m = manager(ConnectionLimits::default().with_max_pending_inbound(2));
    let remote = addr("/ip4/10.0.0.1/tcp/1000");
    let a = m.allow_inbound(&local(), &remote).unwrap();
    let b = m.allow_inbound(&local(), &remote).unwrap();
    let err = m.allow_inbound(&local(), &remote).unwrap_err();
    assert_eq!(err, exceeded(LimitKind::PendingInbound, 2, 2));
    assert_eq!(m.stats().pending_inbound, 2);
    // A failed handshake drops its permit: the slot comes back.
    drop(a);
    assert_eq!(m.stats().pending_inbound, 1);
    let c = m.allow_inbound(&local(), &remote).unwrap();
    // Outbound dials have their own budget.
    assert!(m.allow_dial(None, &remote).is_ok());
    // A successful handshake moves the connection from pending to established.
    let _ = m
        .established(
            b,
            ConnectionId::next(),
            PeerId::random(),
            Direction::Inbound,
            &remote,
        )
        .unwrap();
    assert_eq!(m.stats().pending_inbound, 1);
    assert_eq!(m.stats().established_inbound, 1);
    drop(c);
    assert_eq!(m.stats().pending_inbound, 0);
}

#[test]
fn pending_outbound_limit_refuses_and_releases_on_drop() {
    let m = manager(ConnectionLimits::default().with_max_pending_outbound(1));
    let remote = addr("/ip4/10.0.0.1/tcp/1000");
    let permit = m.allow_dial(None, &remote).unwrap();
    assert_eq!(
        m.allow_dial(Some(PeerId::random()), &remote).unwrap_err(),
        exceeded(LimitKind::PendingOutbound, 1, 1)
    );
    // Inbound has its own budget.
    assert!(m.allow_inbound(&local(), &remote).is_ok());
    drop(permit);
    assert!(m.allow_dial(None, &remote).is_ok());
}

#[test]
fn established_inbound_limit() {
    let m = manager(ConnectionLimits::default().with_max_established_inbound(2));
    let remote = addr("/ip4/10.0.0.1/tcp/1000");
    let first = open_inbound(&m, PeerId::random(), &remote);
    let _second = open_inbound(&m, PeerId::random(), &remote);
    // Refused early, before any handshake...
    assert_eq!(
        m.allow_inbound(&local(), &remote).unwrap_err(),
        exceeded(LimitKind::EstablishedInbound, 2, 2)
    );
    // ...and at `established` for a handshake that was already under way.
    let m2 = manager(ConnectionLimits::default().with_max_established_inbound(1));
    let racing = m2.allow_inbound(&local(), &remote).unwrap();
    let _winner = open_inbound(&m2, PeerId::random(), &remote);
    let err = m2
        .established(
            racing,
            ConnectionId::next(),
            PeerId::random(),
            Direction::Inbound,
            &remote,
        )
        .unwrap_err();
    assert_eq!(err, exceeded(LimitKind::EstablishedInbound, 1, 1));
    assert_eq!(m2.stats().established_inbound, 1);
    assert_eq!(m2.stats().pending_inbound, 0, "refused permit was released");
    // Outbound still allowed; established ones untouched.
    assert!(m.allow_dial(None, &remote).is_ok());
    assert_eq!(m.connections().len(), 2);
    m.closed(first);
    assert!(m.allow_inbound(&local(), &remote).is_ok());
}

#[test]
fn established_outbound_limit() {
    let m = manager(ConnectionLimits::default().with_max_established_outbound(1));
    let remote = addr("/ip4/10.0.0.1/tcp/1000");
    let first = open_outbound(&m, PeerId::random());
    assert_eq!(
        m.allow_dial(Some(PeerId::random()), &remote).unwrap_err(),
        exceeded(LimitKind::EstablishedOutbound, 1, 1)
    );
    assert!(m.allow_inbound(&local(), &remote).is_ok());
    assert_eq!(m.stats().established_outbound, 1);
    m.closed(first);
    assert!(m.allow_dial(None, &remote).is_ok());
}

#[test]
fn established_total_limit_counts_both_directions() {
    let m = manager(ConnectionLimits::default().with_max_established_total(2));
    let remote = addr("/ip4/10.0.0.1/tcp/1000");
    let _a = open_inbound(&m, PeerId::random(), &remote);
    let b = open_outbound(&m, PeerId::random());
    let total = exceeded(LimitKind::EstablishedTotal, 2, 2);
    assert_eq!(m.allow_inbound(&local(), &remote).unwrap_err(), total);
    assert_eq!(m.allow_dial(None, &remote).unwrap_err(), total);
    assert_eq!(m.connections().len(), 2);
    m.closed(b);
    assert!(m.allow_dial(None, &remote).is_ok());
}

#[test]
fn per_peer_limit() {
    let m = manager(ConnectionLimits::default().with_max_established_per_peer(2));
    let peer = PeerId::random();
    let remote = addr("/ip4/10.0.0.1/tcp/1000");
    let a = open_outbound(&m, peer);
    let _b = open_inbound(&m, peer, &remote);
    let per_peer = exceeded(LimitKind::EstablishedPerPeer(peer), 2, 2);
    // A dial to a known peer is refused before dialing.
    assert_eq!(m.allow_dial(Some(peer), &remote).unwrap_err(), per_peer);
    // An inbound connection only reveals its peer in the handshake.
    let permit = m.allow_inbound(&local(), &remote).unwrap();
    let err = m
        .established(
            permit,
            ConnectionId::next(),
            peer,
            Direction::Inbound,
            &remote,
        )
        .unwrap_err();
    assert_eq!(err, per_peer);
    assert!(err.to_string().contains(&peer.to_string()));
    assert_eq!(m.stats().pending_inbound, 0);
    // Other peers are not affected.
    open_inbound(&m, PeerId::random(), &remote);
    assert_eq!(m.connections_to(&peer), 2);
    m.closed(a);
    assert!(m.allow_dial(Some(peer), &remote).is_ok());
}

#[test]
fn per_ip_limit_counts_pending_and_established_inbound() {
    let m = manager(ConnectionLimits::default().with_max_inbound_per_ip(2));
    let ip: IpAddr = "10.0.0.7".parse().unwrap();
    let from_ip = addr("/ip4/10.0.0.7/tcp/1000");
    let other_port = addr("/ip4/10.0.0.7/tcp/2000");
    let established = open_inbound(&m, PeerId::random(), &from_ip);
    let pending = m.allow_inbound(&local(), &other_port).unwrap();
    let err = m.allow_inbound(&local(), &from_ip).unwrap_err();
    assert_eq!(err, exceeded(LimitKind::PerIp(ip), 2, 2));
    assert!(err.to_string().contains("10.0.0.7"));
    // Other addresses, relayed connections and outbound dials are not limited.
    assert!(m
        .allow_inbound(&local(), &addr("/ip4/10.0.0.8/tcp/1"))
        .is_ok());
    let relayed = addr(
        "/ip4/10.0.0.7/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
    );
    assert!(m.allow_inbound(&local(), &relayed).is_ok());
    assert!(m.allow_dial(None, &from_ip).is_ok());
    // Dropping the pending permit frees its IP slot.
    drop(pending);
    let again = m.allow_inbound(&local(), &from_ip).unwrap();
    drop(again);
    // Closing the established connection frees its slot too.
    m.closed(established);
    let a = m.allow_inbound(&local(), &from_ip).unwrap();
    let _b = m.allow_inbound(&local(), &from_ip).unwrap();
    drop(a);
}

#[test]
fn per_ip_limit_exempts_loopback_unless_configured() {
    let lo = addr("/ip4/127.0.0.1/tcp/1000");
    let lo6 = addr("/ip6/::1/tcp/1000");
    let lenient = manager(ConnectionLimits::default().with_max_inbound_per_ip(1));
    let permits: Vec<_> = (0..10)
        .map(|_| lenient.allow_inbound(&local(), &lo).unwrap())
        .collect();
    assert_eq!(permits.len(), 10);
    assert!(lenient.allow_inbound(&local(), &lo6).is_ok());

    let strict = manager(
        ConnectionLimits::default()
            .with_max_inbound_per_ip(1)
            .with_loopback_exempt(false),
    );
    let _held = strict.allow_inbound(&local(), &lo).unwrap();
    assert_eq!(
        strict.allow_inbound(&local(), &lo).unwrap_err().kind(),
        Some(LimitKind::PerIp("127.0.0.1".parse().unwrap()))
    );
}

#[test]
fn pending_per_ip_limit_counts_handshakes_only_and_groups_an_ipv6_64() {
    let m = manager(ConnectionLimits::default().with_max_pending_inbound_per_ip(2));
    let first = addr("/ip6/2001:db8:0:1::1/tcp/1");
    let same_64 = addr("/ip6/2001:db8:0:1:ffff::9/tcp/2");
    let other_64 = addr("/ip6/2001:db8:0:2::1/tcp/1");
    let a = m.allow_inbound(&local(), &first).unwrap();
    let b = m.allow_inbound(&local(), &same_64).unwrap();
    // Another address of the same /64 is the same "IP".
    let err = m
        .allow_inbound(&local(), &addr("/ip6/2001:db8:0:1:1234::1/tcp/3"))
        .unwrap_err();
    let group: IpAddr = "2001:db8:0:1::".parse().unwrap();
    assert_eq!(err, exceeded(LimitKind::PendingPerIp(group), 2, 2));
    assert!(err
        .to_string()
        .contains("pending inbound connections from 2001:db8:0:1::"));
    assert!(m.allow_inbound(&local(), &other_64).is_ok());
    // A handshake that ends frees its pending slot; established ones are not counted.
    let _ = m
        .established(
            a,
            ConnectionId::next(),
            PeerId::random(),
            Direction::Inbound,
            &first,
        )
        .unwrap();
    let _c = m.allow_inbound(&local(), &first).unwrap();
    assert!(m.allow_inbound(&local(), &first).is_err());
    drop(b);
    assert!(m.allow_inbound(&local(), &first).is_ok());
    // Other 127.0.0.x addresses are counted; 127.0.0.1 is not.
    let _x = m
        .allow_inbound(&local(), &addr("/ip4/127.0.0.2/tcp/1"))
        .unwrap();
    let _y = m
        .allow_inbound(&local(), &addr("/ip4/127.0.0.2/tcp/2"))
        .unwrap();
    assert!(m
        .allow_inbound(&local(), &addr("/ip4/127.0.0.2/tcp/3"))
        .is_err());
    let lo: Vec<_> = (0..5)
        .map(|_| {
            m.allow_inbound(&local(), &addr("/ip4/127.0.0.1/tcp/1"))
                .unwrap()
        })
        .collect();
    assert_eq!(lo.len(), 5);
}

#[test]
fn closed_is_idempotent_and_unknown_ids_are_ignored() {
    let m = manager(ConnectionLimits::default().with_max_established_total(1));
    let id = open_outbound(&m, PeerId::random());
    m.closed(id);
    m.closed(id);
    m.closed(ConnectionId::next());
    m.stream_count_changed(ConnectionId::next(), 3);
    assert_eq!(m.stats().established_outbound, 0);
    assert!(m.allow_dial(None, &addr("/ip4/10.0.0.1/tcp/1")).is_ok());
}

#[test]
fn relayed_inbound_connections_are_capped_per_relay() {
    let m = manager(
        ConnectionLimits::default()
            .with_max_relayed_inbound_per_relay(2)
            .with_max_inbound_per_ip(1),
    );
    let (relay, other_relay) = (PeerId::random(), PeerId::random());
    let through = |relay: PeerId| addr(&format!("/ip4/10.0.0.9/tcp/4001/p2p/{relay}/p2p-circuit"));
    // Relayed connections escape the per-IP cap (the relay's IP is not theirs) but
    // count against their relay, pending and established together.
    let first = open_inbound(&m, PeerId::random(), &through(relay));
    let pending = m.allow_inbound(&local(), &through(relay)).unwrap();
    assert_eq!(
        m.allow_inbound(&local(), &through(relay)).unwrap_err(),
        exceeded(LimitKind::RelayedPerRelay(relay), 2, 2)
    );
    // Another relay, and a direct connection, have slots of their own.
    let _ = open_inbound(&m, PeerId::random(), &through(other_relay));
    let _ = open_inbound(&m, PeerId::random(), &addr("/ip4/10.0.0.9/tcp/5000"));
    // A failed handshake gives its slot back, and so does a closed connection.
    drop(pending);
    let again = m.allow_inbound(&local(), &through(relay)).unwrap();
    m.closed(first);
    let _ = m
        .established(
            again,
            ConnectionId::next(),
            PeerId::random(),
            Direction::Inbound,
            &through(relay),
        )
        .unwrap();
    let _ = open_inbound(&m, PeerId::random(), &through(relay));
    assert!(m.allow_inbound(&local(), &through(relay)).is_err());
    // Outbound circuits are not inbound slots.
    let dialed = addr(&format!(
        "/ip4/10.0.0.9/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{}",
        PeerId::random()
    ));
    assert!(m.allow_dial(None, &dialed).is_ok());
    // Without the limit, circuits are not counted at all.
    let open = manager(ConnectionLimits::default());
    for _ in 0..10 {
        let _ = open_inbound(&open, PeerId::random(), &through(relay));
    }
}
