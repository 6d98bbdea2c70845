//! Trimming order under a controllable clock: tags, protection, grace period, stream
//! counts, direction, decaying tags and forced trims.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use weft_connmgr::{
    Admission, Clock, ConnectionId, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy,
    DecayFn, Direction, ManualClock, Multiaddr, PeerId,
};

const GRACE: Duration = Duration::from_secs(10);

fn manager(low: usize, high: usize) -> (ConnectionManager, ManualClock) {
    let clock = ManualClock::new();
    let config = ConnectionManagerConfig::default()
        .with_watermarks(low, high)
        .with_grace_period(GRACE);
    let m = ConnectionManager::with_clock(config, Arc::new(clock.clone())).unwrap();
    (m, clock)
}

fn open(m: &ConnectionManager, peer: PeerId, direction: Direction) -> (ConnectionId, Admission) {
    let remote: Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().unwrap();
    let permit = match direction {
        Direction::Inbound => m.allow_inbound(&remote, &remote).unwrap(),
        Direction::Outbound => m.allow_dial(Some(peer), &remote).unwrap(),
    };
    let id = ConnectionId::next();
    let admission = m.established(permit, id, peer, direction, &remote).unwrap();
    (id, admission)
}

fn set(ids: &[ConnectionId]) -> HashSet<ConnectionId> {
    ids.iter().copied().collect()
}

#[test]
fn nothing_trimmed_up_to_the_high_watermark() {
    let (m, clock) = manager(2, 4);
    for _ in 0..4 {
        let (_, admission) = open(&m, PeerId::random(), Direction::Inbound);
        assert_eq!(admission, Admission::Accepted);
    }
    clock.advance(GRACE * 2);
    assert!(m.trim().is_empty());
    let (_, admission) = open(&m, PeerId::random(), Direction::Inbound);
    assert!(admission.should_trim());
}

#[test]
fn trims_down_to_low_watermark_lowest_tag_value_first() {
    let (m, clock) = manager(2, 4);
    let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
    let ids: Vec<ConnectionId> = peers
        .iter()
        .map(|p| open(&m, *p, Direction::Outbound).0)
        .collect();
    // Values: peer0=50, peer1=-5, peer2=10+10 (two tags), peer3=0, peer4=30.
    m.tag_peer(peers[0], "useful", 50);
    m.tag_peer(peers[1], "bad", -5);
    m.tag_peer(peers[2], "a", 10);
    m.tag_peer(peers[2], "b", 10);
    m.tag_peer(peers[4], "x", 30);
    assert_eq!(m.peer_value(&peers[2]), 20);
    clock.advance(GRACE);
    let closed = m.trim();
    assert_eq!(
        closed,
        vec![ids[1], ids[3], ids[2]],
        "lowest values first, in order"
    );
    assert_eq!(m.stats().closing, 3);
    // Chosen connections are not chosen twice while the host closes them.
    assert!(m.trim().is_empty());
    for id in closed {
        m.closed(id);
    }
    assert_eq!(set(&m.connections()), set(&[ids[0], ids[4]]));
    assert_eq!(m.stats().closing, 0);
}

#[test]
fn untag_and_upsert_change_the_order() {
    let (m, clock) = manager(1, 2);
    let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
    let ida = open(&m, a, Direction::Outbound).0;
    let idb = open(&m, b, Direction::Outbound).0;
    let _idc = open(&m, c, Direction::Outbound).0;
    m.tag_peer(a, "t", 100);
    m.tag_peer(b, "t", 1);
    m.tag_peer(c, "t", 50);
    m.upsert_tag(b, "t", |v| v + 200);
    assert_eq!(m.tag_value(&b, "t"), Some(201));
    m.untag_peer(&a, "t");
    assert_eq!(m.tag_value(&a, "t"), None);
    clock.advance(GRACE);
    // a=0, c=50, b=201: keep only b.
    let plan = m.plan_trim(false);
    assert_eq!(plan.len(), 2);
    assert_eq!(plan[0], ida);
    assert!(!plan.contains(&idb));
    assert_eq!(m.trim(), plan);
}

#[test]
fn ties_broken_by_fewest_streams_then_inbound_first() {
    let (m, clock) = manager(1, 3);
    let busy_out = open(&m, PeerId::random(), Direction::Outbound).0;
    let idle_out = open(&m, PeerId::random(), Direction::Outbound).0;
    let idle_in = open(&m, PeerId::random(), Direction::Inbound).0;
    let busy_in = open(&m, PeerId::random(), Direction::Inbound).0;
    m.stream_count_changed(busy_out, 5);
    m.stream_count_changed(busy_in, 3);
    clock.advance(GRACE);
    assert_eq!(m.trim(), vec![idle_in, idle_out, busy_in]);
}

#[test]
fn protected_peers_are_never_trimmed_except_forced() {
    let (m, clock) = manager(0, 1);
    let (keep, other) = (PeerId::random(), PeerId::random());
    m.protect(keep, "relay");
    m.protect(keep, "bootstrap");
    let kept1 = open(&m, keep, Direction::Inbound).0;
    let kept2 = open(&m, keep, Direction::Outbound).0;
    let gone = open(&m, other, Direction::Outbound).0;
    m.tag_peer(other, "valuable", 1_000);
    clock.advance(GRACE);
    assert!(m.is_protected(&keep, None));
    assert!(m.is_protected(&keep, Some("relay")));
    assert!(!m.is_protected(&keep, Some("dht")));
    // The unprotected peer goes despite its high value; the protected one stays,
    // even though that leaves more than the low watermark.
    assert_eq!(m.trim(), vec![gone]);
    m.closed(gone);
    assert!(m.trim().is_empty());
    // Removing one of two protections keeps the peer protected.
    assert!(m.unprotect(&keep, "relay"));
    assert!(m.trim().is_empty());
    // A forced trim closes protected peers when nothing else is left.
    assert_eq!(set(&m.force_trim()), set(&[kept1, kept2]));
    // The protection survives the peer's disconnect.
    m.closed(kept1);
    m.closed(kept2);
    assert!(m.is_protected(&keep, Some("bootstrap")));
    assert!(!m.unprotect(&keep, "bootstrap"));
    assert!(!m.is_protected(&keep, None));
}

#[test]
fn connections_in_their_grace_period_are_kept() {
    let (m, clock) = manager(0, 1);
    let old1 = open(&m, PeerId::random(), Direction::Inbound).0;
    let old2 = open(&m, PeerId::random(), Direction::Inbound).0;
    clock.advance(GRACE - Duration::from_secs(1));
    let young1 = open(&m, PeerId::random(), Direction::Inbound).0;
    let young2 = open(&m, PeerId::random(), Direction::Inbound).0;
    clock.advance(Duration::from_secs(1));
    // Only the old ones are out of grace: trim stops short of the low watermark.
    assert_eq!(set(&m.trim()), set(&[old1, old2]));
    assert!(
        m.trim().is_empty(),
        "two live connections above high, but in grace"
    );
    clock.advance(GRACE);
    assert_eq!(set(&m.trim()), set(&[young1, young2]));
}

#[test]
fn forced_trim_order_unprotected_then_young_then_protected() {
    let (m, clock) = manager(1, 100);
    let guard = PeerId::random();
    m.protect(guard, "keep");
    let protected = open(&m, guard, Direction::Inbound).0;
    let old = open(&m, PeerId::random(), Direction::Inbound).0;
    clock.advance(GRACE);
    let young = open(&m, PeerId::random(), Direction::Inbound).0;
    let newest = open(&m, PeerId::random(), Direction::Inbound).0;
    m.tag_peer(guard, "v", -100);
    // Below the high watermark a normal trim does nothing; a forced one goes to low.
    assert!(m.trim().is_empty());
    let forced = m.force_trim();
    assert_eq!(forced.len(), 3);
    assert_eq!(forced[0], old);
    assert_eq!(set(&forced[1..]), set(&[young, newest]));
    assert!(!forced.contains(&protected));
}

#[test]
fn decaying_tags_decay_lazily_against_the_clock() {
    let (m, clock) = manager(1, 2);
    let usage = m
        .register_decaying_tag("usage", Duration::from_secs(60), DecayFn::fixed(10))
        .unwrap();
    let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
    let ida = open(&m, a, Direction::Outbound).0;
    let idb = open(&m, b, Direction::Outbound).0;
    let idc = open(&m, c, Direction::Outbound).0;
    usage.bump(a, 25);
    m.tag_peer(b, "plain", 20);
    m.tag_peer(c, "plain", 1);
    assert_eq!(usage.value(&a), Some(25));
    // 59 s: no interval passed yet; a (25) outranks b (20).
    clock.advance(Duration::from_secs(59));
    assert_eq!(m.plan_trim(false), vec![idc, idb]);
    // 61 s: one interval, a is down to 15 < b.
    clock.advance(Duration::from_secs(2));
    assert_eq!(usage.value(&a), Some(15));
    assert_eq!(m.peer_value(&a), 15);
    assert_eq!(m.plan_trim(false), vec![idc, ida]);
    // A bump keeps the interval phase: at 121 s another 10 comes off.
    usage.bump(a, 10);
    assert_eq!(usage.value(&a), Some(25));
    clock.advance(Duration::from_secs(60));
    assert_eq!(usage.value(&a), Some(15));
    // Decay to zero removes the value.
    clock.advance(Duration::from_secs(120));
    assert_eq!(usage.value(&a), None);
    assert_eq!(m.peer_value(&a), 0);
}

#[test]
fn tick_applies_decay_eagerly_and_tags_end_with_the_last_connection() {
    let (m, clock) = manager(0, 10);
    let halving = m
        .register_decaying_tag("halving", Duration::from_secs(1), DecayFn::linear(0.5))
        .unwrap();
    let expiring = m
        .register_decaying_tag("seen", Duration::from_secs(5), DecayFn::expire())
        .unwrap();
    assert!(m
        .register_decaying_tag("seen", Duration::from_secs(5), DecayFn::expire())
        .is_err());
    assert!(m
        .register_decaying_tag("zero", Duration::ZERO, DecayFn::expire())
        .is_err());
    let peer = PeerId::random();
    let id = open(&m, peer, Direction::Inbound).0;
    halving.bump(peer, 64);
    expiring.bump(peer, 7);
    m.tag_peer(peer, "plain", 1);
    assert_eq!(m.peer_value(&peer), 72);
    clock.advance(Duration::from_secs(3));
    m.tick(clock.now());
    assert_eq!(halving.value(&peer), Some(8));
    assert_eq!(m.peer_value(&peer), 16);
    clock.advance(Duration::from_secs(2));
    assert_eq!(expiring.value(&peer), None);
    assert_eq!(m.peer_value(&peer), 3);
    // When the peer's last connection closes, its tags go.
    m.closed(id);
    assert_eq!(m.tag_value(&peer, "plain"), None);
    assert_eq!(halving.value(&peer), None);
    expiring.close();
}

#[test]
fn no_watermarks_means_no_trimming() {
    let m = ConnectionManager::new(ConnectionManagerConfig::default()).unwrap();
    for _ in 0..50 {
        let (_, admission) = open(&m, PeerId::random(), Direction::Inbound);
        assert_eq!(admission, Admission::Accepted);
    }
    assert!(m.trim().is_empty());
    assert!(m.force_trim().is_empty());
    assert!(
        ConnectionManager::new(ConnectionManagerConfig::default().with_watermarks(5, 4)).is_err()
    );
}
