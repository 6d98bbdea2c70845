//! Cost of deciding a trim at 10,000 and 100,000 tracked connections, and of one
//! connection's limit checks (pending, established, close) in weft and in
//! rust-libp2p's `libp2p-connection-limits` side by side. rust-libp2p has no trimming
//! connection manager, so the trim figures have no counterpart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use libp2p_core::ConnectedPoint;
use libp2p_swarm::behaviour::{ConnectionClosed, ConnectionEstablished, FromSwarm};
use libp2p_swarm::NetworkBehaviour;
use weft_connmgr::{
    ConnectionId, ConnectionLimits, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy,
    DecayFn, Direction, ManualClock, Multiaddr, PeerId,
};

/// A manager tracking `n` established connections (two per peer), a tenth of the
/// peers protected, tags on half of them and a decaying tag on a quarter, all out of
/// their grace period, above the high watermark.
fn loaded_manager(n: usize) -> ConnectionManager {
    let clock = ManualClock::new();
    let limits = ConnectionLimits::default()
        .with_max_established_total(n * 2)
        .with_max_established_per_peer(4);
    let config = ConnectionManagerConfig::default()
        .with_limits(limits)
        .with_watermarks(n * 8 / 10, n * 9 / 10)
        .with_grace_period(Duration::from_secs(30));
    let m = ConnectionManager::with_clock(config, Arc::new(clock.clone())).unwrap();
    let decaying = m
        .register_decaying_tag("usage", Duration::from_secs(10), DecayFn::fixed(1))
        .unwrap();
    let remote: Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().unwrap();
    let mut peer = PeerId::random();
    for i in 0..n {
        if i % 2 == 0 {
            peer = PeerId::random();
            if i % 20 == 0 {
                m.protect(peer, "keep");
            }
            if i % 4 == 0 {
                m.tag_peer(peer, "value", (i % 97) as i64);
            }
            if i % 8 == 0 {
                decaying.bump(peer, (i % 31) as i64);
            }
        }
        let direction = if i % 3 == 0 {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let permit = m.allow_dial(Some(peer), &remote).unwrap();
        let id = ConnectionId::from_raw(i as u64);
        let _ = m.established(permit, id, peer, direction, &remote).unwrap();
        m.stream_count_changed(id, i % 5);
    }
    clock.advance(Duration::from_secs(45));
    m
}

fn trim_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("trim_decision");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let m = loaded_manager(n);
        let expected = n - n * 8 / 10;
        assert_eq!(m.plan_trim(false).len(), expected);
        group.bench_with_input(BenchmarkId::new("weft", n), &m, |b, m| {
            b.iter(|| m.plan_trim(false))
        });
    }
    group.finish();
}

/// One inbound connection's checks and bookkeeping with 10,000 others established.
fn limit_checks(c: &mut Criterion) {
    let tracked = 10_000usize;
    let mut group = c.benchmark_group("inbound_limit_checks_at_10000");
    group.sample_size(20);

    let weft = ConnectionManager::new(
        ConnectionManagerConfig::default().with_limits(
            ConnectionLimits::default()
                .with_max_pending_inbound(1_000)
                .with_max_established_inbound(tracked * 2)
                .with_max_established_total(tracked * 2)
                .with_max_established_per_peer(4),
        ),
    )
    .unwrap();
    let local: Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
    let remote: Multiaddr = "/ip4/10.0.0.1/tcp/50000".parse().unwrap();
    for _ in 0..tracked {
        let permit = weft.allow_inbound(&local, &remote).unwrap();
        let _ = weft
            .established(
                permit,
                ConnectionId::next(),
                PeerId::random(),
                Direction::Inbound,
                &remote,
            )
            .unwrap();
    }
    let peer = PeerId::random();
    group.bench_function("weft", |b| {
        b.iter(|| {
            let permit = weft.allow_inbound(&local, &remote).unwrap();
            let id = ConnectionId::next();
            let _ = weft
                .established(permit, id, peer, Direction::Inbound, &remote)
                .unwrap();
            weft.closed(id);
        })
    });

    let limits = libp2p_connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(1_000))
        .with_max_established_incoming(Some(tracked as u32 * 2))
        .with_max_established(Some(tracked as u32 * 2))
        .with_max_established_per_peer(Some(4));
    let mut libp2p = libp2p_connection_limits::Behaviour::new(limits);
    let endpoint = ConnectedPoint::Listener {
        local_addr: local.clone(),
        send_back_addr: remote.clone(),
    };
    let mut next_id = 0usize;
    let mut establish = |b: &mut libp2p_connection_limits::Behaviour, peer: PeerId| {
        next_id += 1;
        let id = libp2p_swarm::ConnectionId::new_unchecked(next_id);
        b.handle_pending_inbound_connection(id, &local, &remote)
            .unwrap();
        let _ = b
            .handle_established_inbound_connection(id, peer, &local, &remote)
            .unwrap();
        b.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        id
    };
    for _ in 0..tracked {
        establish(&mut libp2p, PeerId::random());
    }
    group.bench_function("rust-libp2p", |b| {
        b.iter(|| {
            let id = establish(&mut libp2p, peer);
            libp2p.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id: peer,
                connection_id: id,
                endpoint: &endpoint,
                cause: None,
                remaining_established: 0,
            }));
        })
    });
    group.finish();
}

/// Times one committing `trim()` per size, outside criterion's statistics.
fn one_shot(_: &mut Criterion) {
    for n in [10_000usize, 100_000] {
        let m = loaded_manager(n);
        let start = Instant::now();
        let chosen = m.trim();
        println!(
            "one-shot trim() at {n} connections: {} chosen in {:?}",
            chosen.len(),
            start.elapsed()
        );
    }
}

criterion_group!(benches, trim_decision, limit_checks, one_shot);
criterion_main!(benches);
