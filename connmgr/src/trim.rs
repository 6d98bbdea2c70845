//! Choosing which connections to close when there are too many.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use crate::state::State;
use crate::{ConnectionId, Direction};

/// How a trim treats protected peers and young connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrimMode {
    /// Runs above the high watermark only; never closes protected peers or
    /// connections in their grace period.
    Normal,
    /// Runs above the low watermark; closes anything, protected peers and young
    /// connections last.
    Forced,
}

/// A connection's place in the closing order: smaller closes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TrimKey {
    protected: bool,
    in_grace: bool,
    value: i64,
    streams: usize,
    outbound: bool,
    id: ConnectionId,
}

/// The connections to close to get from the live count down to `low`, most expendable
/// first: lowest summed tag value, then fewest streams, then inbound before outbound.
///
/// In [`TrimMode::Normal`], nothing happens unless the live count is above `high`,
/// and protected peers and connections younger than `grace` are never chosen (so the
/// result may stop short of `low`). Decaying tags are brought up to date with `now`.
pub(crate) fn select(
    state: &mut State,
    low: usize,
    high: usize,
    grace: Duration,
    now: Instant,
    mode: TrimMode,
) -> Vec<ConnectionId> {
    let live = state.live();
    let threshold = match mode {
        TrimMode::Normal => high,
        TrimMode::Forced => low,
    };
    if live <= threshold {
        return Vec::new();
    }
    let wanted = live - low;
    state.decay_all(now);

    let mut values: HashMap<PeerId, (i64, bool)> = HashMap::new();
    let mut candidates: Vec<TrimKey> = Vec::with_capacity(live);
    for (id, conn) in &state.connections {
        if conn.closing {
            continue;
        }
        let (value, protected) = *values.entry(conn.peer).or_insert_with(|| {
            (
                state.peer_value(&conn.peer, now),
                state.is_protected(&conn.peer),
            )
        });
        let in_grace = now.saturating_duration_since(conn.opened_at) < grace;
        if mode == TrimMode::Normal && (protected || in_grace) {
            continue;
        }
        candidates.push(TrimKey {
            protected,
            in_grace,
            value,
            streams: conn.streams,
            outbound: conn.direction == Direction::Outbound,
            id: *id,
        });
    }

    if candidates.len() > wanted {
        if wanted == 0 {
            return Vec::new();
        }
        candidates.select_nth_unstable_by(wanted - 1, Ord::cmp);
        candidates.truncate(wanted);
    }
    candidates.sort_unstable();
    candidates.into_iter().map(|k| k.id).collect()
}
