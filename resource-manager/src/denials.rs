//! Denial counters: how many reservations each scope class refused, per resource.
//!
//! One relaxed atomic add per denial (the cold path), nothing on a granted
//! reservation; read with [`ResourceManager::denials`](crate::ResourceManager::denials),
//! for example by a metrics exporter at scrape time. Counters only grow, so they never
//! drift from what was refused.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ResourceError, ScopeName};
use crate::resource::{Resource, RESOURCES};

/// How many scope classes there are ([`ScopeName::class`]).
const CLASSES: usize = ScopeName::CLASSES.len();

/// The live counters, one per scope class and resource.
#[derive(Debug, Default)]
pub(crate) struct DenialCounters {
    counts: [[AtomicU64; RESOURCES]; CLASSES],
}

impl DenialCounters {
    /// Counts one refused reservation.
    pub(crate) fn record(&self, error: &ResourceError) {
        self.counts[error.scope.class_index()][error.resource.index()]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of every counter.
    pub(crate) fn snapshot(&self) -> Denials {
        Denials {
            counts: std::array::from_fn(|c| {
                std::array::from_fn(|r| self.counts[c][r].load(Ordering::Relaxed))
            }),
        }
    }
}

/// How many reservations were refused since the manager was created, by scope class
/// ([`ScopeName::class`]) and [`Resource`]. A refusal is counted once, for the scope
/// that refused it, when the caller sees the [`ResourceError`]; a connection that the
/// normal scopes refused but the allowlist's admitted is not a refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denials {
    counts: [[u64; RESOURCES]; CLASSES],
}

impl Denials {
    /// Refusals of `resource` by scopes of `class` (one of [`ScopeName::CLASSES`]; 0
    /// for any other string).
    pub fn get(&self, class: &str, resource: Resource) -> u64 {
        ScopeName::CLASSES
            .iter()
            .position(|c| *c == class)
            .map_or(0, |c| self.counts[c][resource.index()])
    }

    /// Every (scope class, resource, count), zeros included, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Resource, u64)> + '_ {
        ScopeName::CLASSES
            .iter()
            .enumerate()
            .flat_map(move |(c, class)| {
                Resource::ALL
                    .iter()
                    .map(move |r| (*class, *r, self.counts[c][r.index()]))
            })
    }

    /// All refusals together.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p_identity::PeerId;

    fn denial(scope: ScopeName, resource: Resource) -> ResourceError {
        ResourceError {
            scope,
            resource,
            requested: 1,
            used: 1,
            limit: 1,
            allowed: 1,
        }
    }

    #[test]
    fn denials_are_counted_by_class_and_resource() {
        let counters = DenialCounters::default();
        counters.record(&denial(ScopeName::Peer(PeerId::random()), Resource::Memory));
        counters.record(&denial(ScopeName::Peer(PeerId::random()), Resource::Memory));
        counters.record(&denial(
            ScopeName::Protocol("/x".into()),
            Resource::StreamsInbound,
        ));
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.get("peer", Resource::Memory), 2);
        assert_eq!(snapshot.get("protocol", Resource::StreamsInbound), 1);
        assert_eq!(snapshot.get("system", Resource::Memory), 0);
        assert_eq!(snapshot.get("no such class", Resource::Memory), 0);
        assert_eq!(snapshot.total(), 3);
        assert_eq!(
            snapshot.iter().count(),
            ScopeName::CLASSES.len() * Resource::ALL.len()
        );
        let nonzero: Vec<_> = snapshot.iter().filter(|(_, _, n)| *n > 0).collect();
        assert_eq!(
            nonzero,
            vec![
                ("peer", Resource::Memory, 2),
                ("protocol", Resource::StreamsInbound, 1)
            ]
        );
    }
}
