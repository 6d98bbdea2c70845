//! Randomised sequences of opens, closes, tags, protections, clock moves and trims,
//! checked against a simple model: a trim never leaves more than the high watermark
//! when enough connections are trimmable, and never closes a protected peer or a
//! connection in its grace period unless forced.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use weft_connmgr::{
    ConnectionId, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy, Direction,
    ManualClock, Multiaddr, PeerId,
};

const GRACE_SECS: u64 = 5;
const PEERS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Open { peer: usize, inbound: bool },
    Close { pick: usize },
    CloseTrimmed,
    Tag { peer: usize, value: i64 },
    Untag { peer: usize },
    Protect { peer: usize },
    Unprotect { peer: usize },
    Streams { pick: usize, streams: usize },
    Advance { secs: u64 },
    Trim,
    ForceTrim,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PEERS, any::<bool>()).prop_map(|(peer, inbound)| Op::Open { peer, inbound }),
        2 => any::<usize>().prop_map(|pick| Op::Close { pick }),
        1 => Just(Op::CloseTrimmed),
        2 => (0..PEERS, -50i64..50).prop_map(|(peer, value)| Op::Tag { peer, value }),
        1 => (0..PEERS).prop_map(|peer| Op::Untag { peer }),
        1 => (0..PEERS).prop_map(|peer| Op::Protect { peer }),
        1 => (0..PEERS).prop_map(|peer| Op::Unprotect { peer }),
        1 => (any::<usize>(), 0usize..8).prop_map(|(pick, streams)| Op::Streams { pick, streams }),
        2 => (0u64..4).prop_map(|secs| Op::Advance { secs }),
        3 => Just(Op::Trim),
        1 => Just(Op::ForceTrim),
    ]
}

/// What the test knows about one open connection.
struct ModelConn {
    peer: usize,
    opened_at: u64,
    closing: bool,
}

struct Model {
    conns: HashMap<ConnectionId, ModelConn>,
    order: Vec<ConnectionId>,
    protected: HashSet<usize>,
    now: u64,
}

impl Model {
    fn live(&self) -> Vec<ConnectionId> {
        self.order
            .iter()
            .copied()
            .filter(|id| !self.conns[id].closing)
            .collect()
    }

    fn trimmable(&self, id: &ConnectionId) -> bool {
        let c = &self.conns[id];
        !self.protected.contains(&c.peer) && self.now - c.opened_at >= GRACE_SECS
    }

    fn remove(&mut self, id: ConnectionId) {
        self.conns.remove(&id);
        self.order.retain(|x| *x != id);
    }
}

fn run(low: usize, high: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let config = ConnectionManagerConfig::default()
        .with_watermarks(low, high)
        .with_grace_period(Duration::from_secs(GRACE_SECS));
    let m = ConnectionManager::with_clock(config, Arc::new(clock.clone())).unwrap();
    let peers: Vec<PeerId> = (0..PEERS).map(|_| PeerId::random()).collect();
    let remote: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
    let mut model = Model {
        conns: HashMap::new(),
        order: Vec::new(),
        protected: HashSet::new(),
        now: 0,
    };

    for op in ops {
        match op {
            Op::Open { peer, inbound } => {
                let (permit, direction) = if inbound {
                    (
                        m.allow_inbound(&remote, &remote).unwrap(),
                        Direction::Inbound,
                    )
                } else {
                    (
                        m.allow_dial(Some(peers[peer]), &remote).unwrap(),
                        Direction::Outbound,
                    )
                };
                let id = ConnectionId::next();
                let admission = m
                    .established(permit, id, peers[peer], direction, &remote)
                    .unwrap();
                model.conns.insert(
                    id,
                    ModelConn {
                        peer,
                        opened_at: model.now,
                        closing: false,
                    },
                );
                model.order.push(id);
                prop_assert_eq!(admission.should_trim(), model.live().len() > high);
            }
            Op::Close { pick } => {
                if !model.order.is_empty() {
                    let id = model.order[pick % model.order.len()];
                    m.closed(id);
                    model.remove(id);
                }
            }
            Op::CloseTrimmed => {
                let closing: Vec<ConnectionId> = model
                    .order
                    .iter()
                    .copied()
                    .filter(|id| model.conns[id].closing)
                    .collect();
                for id in closing {
                    m.closed(id);
                    model.remove(id);
                }
            }
            Op::Tag { peer, value } => m.tag_peer(peers[peer], "t", value),
            Op::Untag { peer } => m.untag_peer(&peers[peer], "t"),
            Op::Protect { peer } => {
                m.protect(peers[peer], "p");
                model.protected.insert(peer);
            }
            Op::Unprotect { peer } => {
                m.unprotect(&peers[peer], "p");
                model.protected.remove(&peer);
            }
            Op::Streams { pick, streams } => {
                if !model.order.is_empty() {
                    m.stream_count_changed(model.order[pick % model.order.len()], streams);
                }
            }
            Op::Advance { secs } => {
                clock.advance(Duration::from_secs(secs));
                model.now += secs;
            }
            Op::Trim | Op::ForceTrim => {
                let forced = matches!(op, Op::ForceTrim);
                let live_before = model.live();
                let trimmable: Vec<ConnectionId> = live_before
                    .iter()
                    .copied()
                    .filter(|id| model.trimmable(id))
                    .collect();
                let chosen = if forced { m.force_trim() } else { m.trim() };
                let chosen_set: HashSet<ConnectionId> = chosen.iter().copied().collect();
                prop_assert_eq!(chosen_set.len(), chosen.len(), "no duplicates");
                for id in &chosen {
                    prop_assert!(live_before.contains(id), "only live connections");
                }
                let live_after = live_before.len() - chosen.len();
                if forced {
                    prop_assert_eq!(live_after, live_before.len().min(low));
                    // Protected or young ones only once every trimmable one is chosen.
                    if chosen.iter().any(|id| !model.trimmable(id)) {
                        prop_assert!(trimmable.iter().all(|id| chosen_set.contains(id)));
                    }
                } else {
                    for id in &chosen {
                        prop_assert!(model.trimmable(id), "never protected or in grace");
                    }
                    if live_before.len() <= high {
                        prop_assert!(chosen.is_empty());
                    } else if trimmable.len() >= live_before.len() - low {
                        prop_assert_eq!(live_after, low);
                        prop_assert!(live_after <= high);
                    } else {
                        prop_assert_eq!(chosen.len(), trimmable.len());
                    }
                }
                for id in chosen {
                    if let Some(c) = model.conns.get_mut(&id) {
                        c.closing = true;
                    }
                }
            }
        }
        let stats = m.stats();
        prop_assert_eq!(
            stats.established_inbound + stats.established_outbound,
            model.conns.len()
        );
        prop_assert_eq!(stats.closing, model.conns.len() - model.live().len());
        prop_assert_eq!(stats.pending_inbound + stats.pending_outbound, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trims_respect_watermarks_protection_and_grace(
        low in 0usize..5,
        extra in 0usize..5,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(low, low + extra, ops)?;
    }
}
