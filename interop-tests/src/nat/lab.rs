//! The lab: a public namespace and, per peer, a NAT router and a private namespace
//! behind it, all uniquely named and deleted on drop.
//!
//! ```text
//!   public namespace ("the internet")                 198.51.100.1-3 (servers)
//!   br0: 198.51.100.1/24 .2 .3, 203.0.113.1/24        203.0.113.1    (routers' gateway)
//!     |                 |
//!   wan 203.0.113.10  wan 203.0.113.11   ...  router i: NAT rules of its kind
//!   lan 10.1.0.1      lan 10.2.0.1
//!     |                 |
//!   eth0 10.1.0.2     eth0 10.2.0.2      ...  peer i's private namespace
//! ```
//!
//! Routers reach each other on the bridge (the same /24) and the servers through the
//! public namespace, which owns the server addresses (no forwarding there). Nothing
//! is routed to the machine's own network: packets stay in the namespaces.
//!
//! A server answers from the address it was contacted at; a connection the public
//! namespace starts towards a router from a socket bound to no address (an AutoNAT
//! server's dial-back host has no listener) leaves from the gateway address
//! [`Lab::outbound_ip`], which no peer ever contacts: the lab's servers dial back
//! from a second address of theirs, so an address-restricted cone keeps their
//! dial-backs out (see the interop-tests README, "NAT lab and matrix").

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use super::kind::NatKind;
use super::netns::{self, NetNs};
use super::LabError;

/// What every namespace name of this harness starts with.
const PREFIX: &str = "weftlab";
/// The most NAT'd peers one lab holds.
pub const MAX_PEERS: usize = 200;
/// How many server addresses the public namespace has (`198.51.100.1` and up).
pub const PUBLIC_HOSTS: usize = 3;
/// The routers' gateway in the public namespace.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A peer behind a NAT router: the router's namespace and the peer's own.
#[derive(Debug)]
pub struct NatPeer {
    kind: NatKind,
    index: usize,
    inside: NetNs,
    router: NetNs,
}

impl NatPeer {
    /// The router's NAT behaviour.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// Its position in the lab (`0..`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The peer's private namespace (run peers and make sockets here).
    pub fn inside(&self) -> &NetNs {
        &self.inside
    }

    /// The NAT router's namespace.
    pub fn router(&self) -> &NetNs {
        &self.router
    }

    /// The peer's own address, `10.<index + 1>.0.2`.
    pub fn inside_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet(), 0, 2)
    }

    /// The router's outside address, what the world sees: `203.0.113.<10 + index>`.
    pub fn wan_ip(&self) -> Ipv4Addr {
        wan_ip(self.index)
    }

    fn subnet(&self) -> u8 {
        subnet(self.index)
    }
}

fn subnet(index: usize) -> u8 {
    // `Lab::new` caps the index at MAX_PEERS (< 255).
    u8::try_from(index + 1).unwrap_or(u8::MAX)
}

fn wan_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, u8::try_from(10 + index).unwrap_or(u8::MAX))
}

/// A public namespace and peers behind NAT routers (see the module documentation).
///
/// Dropping it deletes every namespace (peers first); programs started inside should
/// be dropped (killed) before.
#[derive(Debug)]
pub struct Lab {
    id: String,
    // Declared before `public`: dropped, hence deleted, first.
    peers: Vec<NatPeer>,
    public: NetNs,
}

impl Lab {
    /// Builds a lab with one NAT'd peer per entry of `kinds`, in that order.
    ///
    /// Namespaces left behind by dead processes of this harness (a test killed before
    /// its drop ran) are deleted first.
    pub fn new(kinds: &[NatKind]) -> Result<Self, LabError> {
        if kinds.len() > MAX_PEERS {
            return Err(LabError::TooManyPeers(kinds.len()));
        }
        reap_stale();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{PREFIX}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let public = NetNs::create(&format!("{id}-pub"))?;
        public.ip(&["link", "add", "br0", "type", "bridge"])?;
        for n in 0..PUBLIC_HOSTS {
            public.ip(&["addr", "add", &format!("{}/24", public_ip(n)), "dev", "br0"])?;
        }
        public.ip(&["addr", "add", &format!("{GATEWAY}/24"), "dev", "br0"])?;
        public.ip(&["link", "set", "br0", "up"])?;
        // What the kernel picks anyway, said here because the AutoNAT expectations
        // rest on it: unbound sockets reach the routers from the gateway address,
        // never from a server address a peer contacted.
        let routers = format!("{}/24", Ipv4Addr::from(u32::from(GATEWAY) & 0xffff_ff00));
        public.ip(&[
            "route",
            "replace",
            &routers,
            "dev",
            "br0",
            "proto",
            "kernel",
            "scope",
            "link",
            "src",
            &GATEWAY.to_string(),
        ])?;
        let mut peers = Vec::with_capacity(kinds.len());
        for (index, &kind) in kinds.iter().enumerate() {
            peers.push(add_peer(&id, &public, index, kind)?);
        }
        tracing::debug!(%id, peers = peers.len(), "lab up");
        Ok(Self { id, peers, public })
    }

    /// The lab's unique name, the prefix of all its namespaces.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public namespace (relays, AutoNAT servers, the probes' far ends).
    pub fn public(&self) -> &NetNs {
        &self.public
    }

    /// Where connections that the public namespace starts towards the routers
    /// come from when their socket is bound to no address: `203.0.113.1`, the
    /// routers' gateway, an address no peer contacts (the route's source address).
    pub fn outbound_ip(&self) -> Ipv4Addr {
        GATEWAY
    }

    /// The `n`-th server address of the public namespace (`198.51.100.<n + 1>`,
    /// `n < PUBLIC_HOSTS`; larger `n` wrap).
    pub fn public_ip(&self, n: usize) -> Ipv4Addr {
        public_ip(n)
    }

    /// `public_ip(n):port`.
    pub fn public_addr(&self, n: usize, port: u16) -> SocketAddr {
        SocketAddr::from((public_ip(n), port))
    }

    /// The NAT'd peers, in the order of `kinds`.
    pub fn peers(&self) -> &[NatPeer] {
        &self.peers
    }

    /// The `i`-th NAT'd peer.
    ///
    /// # Panics
    ///
    /// When there is no such peer.
    pub fn peer(&self, i: usize) -> &NatPeer {
        &self.peers[i]
    }
}

fn public_ip(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        198,
        51,
        100,
        u8::try_from(n % PUBLIC_HOSTS + 1).unwrap_or(1),
    )
}

/// Router and private namespace of peer `index`, wired to the public bridge.
fn add_peer(id: &str, public: &NetNs, index: usize, kind: NatKind) -> Result<NatPeer, LabError> {
    let router = NetNs::create(&format!("{id}-r{index}"))?;
    let inside = NetNs::create(&format!("{id}-h{index}"))?;
    let port = format!("p{index}");
    // Both ends are made in their namespaces at once: no name ever exists in the
    // machine's own namespace, so parallel labs never clash.
    router.ip(&[
        "link",
        "add",
        "wan",
        "type",
        "veth",
        "peer",
        "name",
        &port,
        "netns",
        public.name(),
    ])?;
    public.ip(&["link", "set", &port, "master", "br0", "up"])?;
    router.ip(&[
        "addr",
        "add",
        &format!("{}/24", wan_ip(index)),
        "dev",
        "wan",
    ])?;
    router.ip(&["link", "set", "wan", "up"])?;
    router.ip(&[
        "link",
        "add",
        "lan",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        inside.name(),
    ])?;
    let net = subnet(index);
    router.ip(&["addr", "add", &format!("10.{net}.0.1/24"), "dev", "lan"])?;
    router.ip(&["link", "set", "lan", "up"])?;
    router.ip(&["route", "add", "default", "via", &GATEWAY.to_string()])?;
    router.sysctl("net/ipv4/ip_forward", "1")?;
    router.nft(&kind.ruleset("wan"))?;
    inside.ip(&["addr", "add", &format!("10.{net}.0.2/24"), "dev", "eth0"])?;
    inside.ip(&["link", "set", "eth0", "up"])?;
    inside.ip(&["route", "add", "default", "via", &format!("10.{net}.0.1")])?;
    Ok(NatPeer {
        kind,
        index,
        inside,
        router,
    })
}

/// Deletes namespaces of this harness whose process is gone.
fn reap_stale() {
    for name in netns::list() {
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            tracing::debug!(%name, "deleting a namespace left by a dead process");
            let _ = netns::run_ip(&["netns", "del", &name]);
        }
    }
}
