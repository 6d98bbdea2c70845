//! Security roles promised to inbound connections: while a hole punch runs, a TCP
//! connection that arrives at our listener from the peer's IP takes the role the
//! punch assigned us (and must prove that peer), not the listener's usual
//! responder role.
//!
//! A punching SYN does not always meet ours in a simultaneous open: when our NAT
//! lets the peer's SYN in before we sent ours (a full-cone or address-restricted
//! NAT, or a symmetric one on the peer's side, which sends from a port nobody
//! predicted), it reaches our listener as an ordinary inbound connection. The peer
//! dialed it in the role DCUtR gave it; were we to answer as a listener, two
//! responders (or two initiators) would wait for each other until a timeout.

use libp2p_identity::PeerId;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use weft_upgrader::Role;

/// Promises at once (punches run concurrently, each promising a few IPs); a new one
/// beyond evicts the oldest.
const MAX_PROMISES: usize = 64;

#[derive(Debug)]
struct Promise {
    id: u64,
    ip: IpAddr,
    peer: PeerId,
    role: Role,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    promises: Vec<Promise>,
}

/// The roles promised to inbound connections, by remote IP.
#[derive(Debug, Default, Clone)]
pub(crate) struct InboundRoles {
    table: Arc<Mutex<Table>>,
}

/// Keeps a promise; dropping it withdraws the promise.
#[derive(Debug)]
#[must_use = "the promise is withdrawn when the guard drops"]
pub(crate) struct RoleGuard {
    table: Arc<Mutex<Table>>,
    ids: Vec<u64>,
}

impl Drop for RoleGuard {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        table.promises.retain(|p| !self.ids.contains(&p.id));
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl InboundRoles {
    /// Promises `role` to inbound connections from any of `ips`, which must prove
    /// `peer`, until the guard drops.
    #[cfg_attr(not(feature = "dcutr"), allow(dead_code))]
    pub(crate) fn promise(&self, ips: &[IpAddr], peer: PeerId, role: Role) -> RoleGuard {
        let mut table = lock(&self.table);
        let mut ids = Vec::new();
        for &ip in ips {
            if ids.len() >= MAX_PROMISES {
                break;
            }
            if table.promises.len() >= MAX_PROMISES {
                table.promises.remove(0);
            }
            let id = table.next_id;
            table.next_id = table.next_id.wrapping_add(1);
            table.promises.push(Promise { id, ip, peer, role });
            ids.push(id);
        }
        RoleGuard {
            table: self.table.clone(),
            ids,
        }
    }

    /// The role and the peer promised to an inbound connection from `ip`, the newest
    /// promise first.
    pub(crate) fn for_ip(&self, ip: IpAddr) -> Option<(Role, PeerId)> {
        let table = lock(&self.table);
        table
            .promises
            .iter()
            .rev()
            .find(|p| p.ip == ip)
            .map(|p| (p.role, p.peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promise_holds_until_its_guard_drops() {
        let roles = InboundRoles::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let ip: IpAddr = "203.0.113.10".parse().unwrap();
        let other: IpAddr = "203.0.113.11".parse().unwrap();
        assert_eq!(roles.for_ip(ip), None);
        let first = roles.promise(&[ip], a, Role::Initiator);
        assert_eq!(roles.for_ip(ip), Some((Role::Initiator, a)));
        assert_eq!(roles.for_ip(other), None);
        let second = roles.promise(&[ip, other], b, Role::Responder);
        assert_eq!(roles.for_ip(ip), Some((Role::Responder, b)), "newest first");
        drop(second);
        assert_eq!(roles.for_ip(ip), Some((Role::Initiator, a)));
        assert_eq!(roles.for_ip(other), None);
        drop(first);
        assert_eq!(roles.for_ip(ip), None);
    }

    #[test]
    fn promises_are_bounded() {
        let roles = InboundRoles::default();
        let peer = PeerId::random();
        let ips: Vec<IpAddr> = (0..200u8)
            .map(|i| IpAddr::from([198, 51, 100, i]))
            .collect();
        let guard = roles.promise(&ips, peer, Role::Initiator);
        assert_eq!(lock(&roles.table).promises.len(), MAX_PROMISES);
        drop(guard);
        assert!(lock(&roles.table).promises.is_empty());
    }
}
