//! Shared workload of the peer store benchmarks: peers with 8 addresses and 16 protocols.

#![allow(dead_code)]

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use weft_peerstore::{PeerStore, DEFAULT_ADDR_TTL};

/// Peers in the benchmark stores.
pub const PEERS: usize = 100_000;

/// Realistic protocol ids; each peer gets 16 of them.
pub const PROTOCOLS: [&str; 16] = [
    "/ipfs/id/1.0.0",
    "/ipfs/id/push/1.0.0",
    "/ipfs/ping/1.0.0",
    "/libp2p/circuit/relay/0.2.0/stop",
    "/libp2p/circuit/relay/0.2.0/hop",
    "/libp2p/autonat/1.0.0",
    "/libp2p/autonat/2/dial-request",
    "/libp2p/dcutr",
    "/ipfs/kad/1.0.0",
    "/ipfs/bitswap/1.2.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.0.0",
    "/ipfs/bitswap",
    "/meshsub/1.1.0",
    "/meshsub/1.0.0",
    "/floodsub/1.0.0",
];

/// The 8 addresses of peer `i`.
pub fn addrs(i: usize) -> Vec<Multiaddr> {
    let (a, b) = ((i >> 8) & 255, i & 255);
    vec![
        format!("/ip4/10.{a}.{b}.1/tcp/4001").parse().unwrap(),
        format!("/ip4/10.{a}.{b}.1/udp/4001/quic-v1")
            .parse()
            .unwrap(),
        format!("/ip4/172.16.{a}.{b}/tcp/4001").parse().unwrap(),
        format!("/ip4/172.16.{a}.{b}/udp/4001/quic-v1")
            .parse()
            .unwrap(),
        format!("/ip6/2001:db8::{a:x}:{b:x}/tcp/4001")
            .parse()
            .unwrap(),
        format!("/ip6/2001:db8::{a:x}:{b:x}/udp/4001/quic-v1")
            .parse()
            .unwrap(),
        format!("/dns4/node-{i}.example.com/tcp/4001")
            .parse()
            .unwrap(),
        format!("/dns6/node-{i}.example.com/tcp/4001")
            .parse()
            .unwrap(),
    ]
}

/// Fills `store` with `count` peers; returns their ids.
pub fn populate(store: &dyn PeerStore, count: usize) -> Vec<PeerId> {
    (0..count)
        .map(|i| {
            let peer = PeerId::random();
            store.add_addrs(&peer, &addrs(i), DEFAULT_ADDR_TTL).unwrap();
            store.set_protocols(&peer, &PROTOCOLS).unwrap();
            peer
        })
        .collect()
}
