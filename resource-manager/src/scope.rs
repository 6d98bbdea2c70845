//! One scope's counters and the all-or-nothing charge along a path of scopes.
//!
//! Each counter is an atomic updated with a compare-and-swap that checks the limit, so
//! a charge never allocates and never takes a lock of its own. A charge along a path
//! adds to each scope in turn and, on the first denial, takes back what it added: a
//! denial leaves every scope as it was.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ResourceError, ScopeName};
use crate::limits::ScopeLimit;
use crate::resource::{Direction, Resource, RESOURCES};
use crate::stats::ScopeUsage;

/// An amount of each resource, indexed like [`Resource::ALL`].
pub(crate) type Delta = [u64; RESOURCES];

/// Nothing of anything.
pub(crate) const ZERO: Delta = [0; RESOURCES];

/// The priority at which a charge may use the whole limit.
pub(crate) const ALWAYS: u8 = 255;

/// `amount` of one resource.
pub(crate) fn one(resource: Resource, amount: u64) -> Delta {
    let mut delta = ZERO;
    delta[resource.index()] = amount;
    delta
}

/// One connection of `direction`, pending if inbound, with one fd if `uses_fd`.
pub(crate) fn connection(direction: Direction, uses_fd: bool) -> Delta {
    let mut delta = ZERO;
    delta[Resource::ConnectionsTotal.index()] = 1;
    match direction {
        Direction::Inbound => {
            delta[Resource::ConnectionsInbound.index()] = 1;
            delta[Resource::PendingInbound.index()] = 1;
        }
        Direction::Outbound => delta[Resource::ConnectionsOutbound.index()] = 1,
    }
    delta[Resource::FileDescriptors.index()] = u64::from(uses_fd);
    delta
}

/// One stream of `direction`.
pub(crate) fn stream(direction: Direction) -> Delta {
    let mut delta = ZERO;
    delta[Resource::StreamsTotal.index()] = 1;
    match direction {
        Direction::Inbound => delta[Resource::StreamsInbound.index()] = 1,
        Direction::Outbound => delta[Resource::StreamsOutbound.index()] = 1,
    }
    delta
}

/// `a += b`.
pub(crate) fn add(a: &mut Delta, b: &Delta) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

/// `a -= b`, saturating at zero.
pub(crate) fn sub(a: &mut Delta, b: &Delta) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_sub(*y);
    }
}

/// `limit * (priority + 1) / 256`, as go-libp2p (and `weft_upgrader::Priority::share_of`).
pub(crate) fn share_of(limit: u64, priority: u8) -> u64 {
    let share = u128::from(limit) * (u128::from(priority) + 1) / 256;
    u64::try_from(share).unwrap_or(u64::MAX)
}

/// Why one scope refused.
#[derive(Debug, Clone, Copy)]
struct Denial {
    resource: Resource,
    requested: u64,
    used: u64,
    allowed: u64,
}

/// A scope: its name, limits and usage.
#[derive(Debug)]
pub(crate) struct Scope {
    name: ScopeName,
    limits: [u64; RESOURCES],
    used: [AtomicU64; RESOURCES],
}

impl Scope {
    /// An empty scope.
    pub(crate) fn new(name: ScopeName, limit: ScopeLimit) -> Self {
        Scope {
            name,
            limits: limit.to_array(),
            used: Default::default(),
        }
    }

    /// The scope's limit of `resource`.
    pub(crate) fn limit_of(&self, resource: Resource) -> u64 {
        self.limits[resource.index()]
    }

    /// The usage of `resource`.
    pub(crate) fn used(&self, resource: Resource) -> u64 {
        self.used[resource.index()].load(Ordering::Relaxed)
    }

    /// Every counter.
    pub(crate) fn usage_delta(&self) -> Delta {
        Resource::ALL.map(|r| self.used(r))
    }

    /// Every counter, as a [`ScopeUsage`].
    pub(crate) fn usage(&self) -> ScopeUsage {
        ScopeUsage::from_array(self.usage_delta())
    }

    /// What a charge of `resource` at `priority` may bring the usage up to.
    fn allowed(&self, resource: Resource, priority: u8) -> u64 {
        let limit = self.limits[resource.index()];
        if resource == Resource::Memory && priority < ALWAYS && limit != u64::MAX {
            share_of(limit, priority)
        } else {
            limit
        }
    }

    /// Adds `delta` if every counter stays within what `priority` allows; else nothing.
    fn try_add(&self, delta: &Delta, priority: u8) -> Result<(), Denial> {
        for (i, &amount) in delta.iter().enumerate() {
            if amount == 0 {
                continue;
            }
            let resource = Resource::ALL[i];
            let allowed = self.allowed(resource, priority);
            let result = self.used[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                cur.checked_add(amount).filter(|&next| next <= allowed)
            });
            if let Err(used) = result {
                for (j, &taken) in delta.iter().enumerate().take(i) {
                    self.take_back(j, taken);
                }
                return Err(Denial {
                    resource,
                    requested: amount,
                    used,
                    allowed,
                });
            }
        }
        Ok(())
    }

    /// Subtracts `amount` from counter `i`.
    fn take_back(&self, i: usize, amount: u64) {
        if amount != 0 {
            let before = self.used[i].fetch_sub(amount, Ordering::Relaxed);
            debug_assert!(before >= amount, "{}: released more than held", self.name);
        }
    }

    /// Subtracts `delta`, which must have been added before.
    pub(crate) fn sub(&self, delta: &Delta) {
        for (i, &amount) in delta.iter().enumerate() {
            self.take_back(i, amount);
        }
    }

    /// Adds `delta` if every counter stays within what `priority` allows, or says why not.
    pub(crate) fn try_charge(&self, delta: &Delta, priority: u8) -> Result<(), ResourceError> {
        self.try_add(delta, priority).map_err(|d| self.deny(d))
    }

    /// The error for `denial`, logged with this scope's usage.
    fn deny(&self, denial: Denial) -> ResourceError {
        let error = ResourceError {
            scope: self.name.clone(),
            resource: denial.resource,
            requested: denial.requested,
            used: denial.used,
            limit: self.limit_of(denial.resource),
            allowed: denial.allowed,
        };
        tracing::debug!(
            scope = %self.name,
            class = self.name.class(),
            resource = denial.resource.as_str(),
            requested = denial.requested,
            used = denial.used,
            limit = error.limit,
            allowed = denial.allowed,
            usage = ?self.usage(),
            "resource manager: denied"
        );
        error
    }
}

/// The scopes a charge goes to, at most six, none allocated.
pub(crate) type Path<'a> = [Option<&'a Scope>; 6];

/// Adds `delta` to every scope of `path`, or to none.
pub(crate) fn charge(path: &Path<'_>, delta: &Delta, priority: u8) -> Result<(), ResourceError> {
    for (i, scope) in path.iter().flatten().enumerate() {
        if let Err(error) = scope.try_charge(delta, priority) {
            for done in path.iter().flatten().take(i) {
                done.sub(delta);
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Subtracts `delta` from every scope of `path`.
pub(crate) fn release(path: &Path<'_>, delta: &Delta) {
    for scope in path.iter().flatten() {
        scope.sub(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(name: ScopeName) -> Scope {
        Scope::new(
            name,
            ScopeLimit::unlimited()
                .with_memory(1024)
                .with_streams(2, 2, 3),
        )
    }

    #[test]
    fn share_matches_go_libp2p() {
        assert_eq!(share_of(256, 255), 256);
        assert_eq!(share_of(256, 0), 1);
        assert_eq!(share_of(1 << 20, 101), (1 << 20) * 102 / 256);
        assert_eq!(share_of(u64::MAX, 255), u64::MAX);
    }

    #[test]
    fn memory_priority_caps_usage() {
        let scope = small(ScopeName::System);
        // Priority 127 may fill half of 1024.
        scope.try_charge(&one(Resource::Memory, 512), 127).unwrap();
        let error = scope
            .try_charge(&one(Resource::Memory, 1), 127)
            .unwrap_err();
        assert_eq!(error.resource, Resource::Memory);
        assert_eq!((error.used, error.limit, error.allowed), (512, 1024, 512));
        scope
            .try_charge(&one(Resource::Memory, 512), ALWAYS)
            .unwrap();
        assert!(scope.try_charge(&one(Resource::Memory, 1), ALWAYS).is_err());
        scope.sub(&one(Resource::Memory, 1024));
        assert!(scope.usage().is_zero());
    }

    #[test]
    fn a_denied_resource_takes_back_the_others() {
        let scope = small(ScopeName::Connection);
        scope
            .try_charge(&stream(Direction::Inbound), ALWAYS)
            .unwrap();
        scope
            .try_charge(&stream(Direction::Inbound), ALWAYS)
            .unwrap();
        let error = scope
            .try_charge(&stream(Direction::Inbound), ALWAYS)
            .unwrap_err();
        assert_eq!(error.resource, Resource::StreamsInbound);
        scope
            .try_charge(&stream(Direction::Outbound), ALWAYS)
            .unwrap();
        // The total (3) denies after the outbound counter was already bumped.
        let error = scope
            .try_charge(&stream(Direction::Outbound), ALWAYS)
            .unwrap_err();
        assert_eq!(error.resource, Resource::StreamsTotal);
        assert_eq!(scope.used(Resource::StreamsOutbound), 1);
        assert_eq!(scope.used(Resource::StreamsTotal), 3);
    }

    #[test]
    fn a_denial_on_the_path_leaves_every_scope_unchanged() {
        let a = small(ScopeName::Stream);
        let b = small(ScopeName::Transient);
        let c = Scope::new(ScopeName::System, ScopeLimit::unlimited().with_memory(100));
        let path: Path<'_> = [Some(&a), None, Some(&b), Some(&c), None, None];
        charge(&path, &one(Resource::Memory, 60), ALWAYS).unwrap();
        let error = charge(&path, &one(Resource::Memory, 60), ALWAYS).unwrap_err();
        assert_eq!(error.scope, ScopeName::System);
        for scope in [&a, &b, &c] {
            assert_eq!(scope.used(Resource::Memory), 60);
        }
        release(&path, &one(Resource::Memory, 60));
        for scope in [&a, &b, &c] {
            assert!(scope.usage().is_zero());
        }
    }

    #[test]
    fn unlimited_counters_still_refuse_overflow() {
        let scope = Scope::new(ScopeName::System, ScopeLimit::unlimited());
        scope
            .try_charge(&one(Resource::Memory, u64::MAX), 0)
            .unwrap();
        assert!(scope.try_charge(&one(Resource::Memory, 1), ALWAYS).is_err());
    }

    #[test]
    fn deltas_of_connections_and_streams() {
        let inbound = connection(Direction::Inbound, true);
        assert_eq!(inbound[Resource::PendingInbound.index()], 1);
        assert_eq!(inbound[Resource::FileDescriptors.index()], 1);
        let outbound = connection(Direction::Outbound, false);
        assert_eq!(outbound[Resource::PendingInbound.index()], 0);
        assert_eq!(outbound[Resource::ConnectionsOutbound.index()], 1);
        let mut sum = inbound;
        add(&mut sum, &outbound);
        assert_eq!(sum[Resource::ConnectionsTotal.index()], 2);
        sub(&mut sum, &inbound);
        assert_eq!(sum, outbound);
    }
}
