//! `/dns*` and `/dnsaddr` against a real DNS server: `hickory-server` serving an
//! in-memory zone on 127.0.0.1 over UDP and TCP.

#[path = "support/closed_port.rs"]
mod closed_port;

use closed_port::ClosedPort;
use hickory_server::proto::rr::rdata::{A, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use weft_host::dial::dns::{self, DnsError, DnsLimits, Resolver};
use weft_host::dial::HickoryResolver;
use weft_host::{Host, Multiaddr, PeerId};

const ZONE: &str = "example.test.";

/// What the zone holds besides its SOA: (name, record).
enum Rec {
    Txt(&'static str, String),
    A(&'static str, Ipv4Addr),
}

fn record(rec: &Rec) -> Record {
    match rec {
        Rec::Txt(name, text) => Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::TXT(TXT::new(vec![text.clone()])),
        ),
        Rec::A(name, ip) => {
            Record::from_rdata(Name::from_ascii(name).unwrap(), 60, RData::A(A(*ip)))
        }
    }
}

/// Starts an authoritative server for [`ZONE`] with `records` on 127.0.0.1: UDP,
/// and TCP on the same port when `tcp`. Dropping the server stops it.
async fn dns_server(records: &[Rec], tcp: bool) -> (Server<Catalog>, SocketAddr) {
    let origin = Name::from_ascii(ZONE).unwrap();
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        Name::from_ascii("ns.example.test.").unwrap(),
        Name::from_ascii("admin.example.test.").unwrap(),
        1,
        3600,
        600,
        86400,
        60,
    );
    assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
    for r in records {
        assert!(zone.upsert_mut(record(r), 1));
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let mut server = Server::new(catalog);
    // UDP and TCP on one port: retry with another port if TCP's is taken.
    for _ in 0..20 {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if tcp {
            let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
                continue;
            };
            server.register_listener(listener, Duration::from_secs(5), 64 * 1024);
        }
        server.register_socket(udp);
        return (server, addr);
    }
    panic!("no UDP and TCP port pair free on 127.0.0.1");
}

fn tcp_port(addr: &Multiaddr) -> u16 {
    addr.iter()
        .find_map(|p| match p {
            weft_host::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap()
}

/// A host listening on 127.0.0.1, and its address.
async fn listening_host() -> (Host, Multiaddr) {
    let host = Host::builder().build().unwrap();
    let addr = host
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone();
    (host, addr)
}

fn resolver(at: SocketAddr) -> Arc<HickoryResolver> {
    Arc::new(HickoryResolver::with_name_servers(&[at]).unwrap())
}

#[tokio::test]
async fn dnsaddr_resolves_recursively_for_the_peer_and_the_dial_connects() {
    let (server, live) = listening_host().await;
    let id = server.peer_id();
    let other = PeerId::random();
    let closed = ClosedPort::bind();
    let dead = closed.port();
    let records = [
        Rec::Txt(
            "_dnsaddr.peer.example.test.",
            format!("dnsaddr=/dnsaddr/nested.example.test/p2p/{id}"),
        ),
        Rec::Txt(
            "_dnsaddr.peer.example.test.",
            format!("dnsaddr=/ip4/127.0.0.1/tcp/{dead}/p2p/{id}"),
        ),
        Rec::Txt(
            "_dnsaddr.peer.example.test.",
            format!("dnsaddr=/ip4/127.0.0.1/tcp/9/p2p/{other}"),
        ),
        Rec::Txt("_dnsaddr.peer.example.test.", "not a dnsaddr record".into()),
        Rec::Txt(
            "_dnsaddr.nested.example.test.",
            format!(
                "dnsaddr=/dns4/node.example.test/tcp/{}/p2p/{id}",
                tcp_port(&live)
            ),
        ),
        Rec::A("node.example.test.", Ipv4Addr::LOCALHOST),
        Rec::Txt(
            "_dnsaddr.loop.example.test.",
            "dnsaddr=/dnsaddr/loop.example.test".into(),
        ),
    ];
    let (_dns, at) = dns_server(&records, true).await;
    let resolver = resolver(at);

    // What the name resolves to: both levels, the other peer's entry left out.
    let name: Multiaddr = format!("/dnsaddr/peer.example.test/p2p/{id}")
        .parse()
        .unwrap();
    let mut found = dns::resolve(resolver.as_ref(), &name, None, &DnsLimits::default())
        .await
        .unwrap();
    found.sort();
    let mut expected: Vec<Multiaddr> = [
        format!("/ip4/127.0.0.1/tcp/{dead}/p2p/{id}"),
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", tcp_port(&live)),
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    expected.sort();
    assert_eq!(found, expected);

    // A record that points at itself stops at the depth bound.
    let looped: Multiaddr = "/dnsaddr/loop.example.test".parse().unwrap();
    let err = dns::resolve(resolver.as_ref(), &looped, None, &DnsLimits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DnsError::TooDeep { max_depth: 4, .. }),
        "{err:?}"
    );
    // An unknown name is an error, not an empty list.
    assert!(resolver.lookup_ip("nowhere.example.test").await.is_err());

    // The host dials every resolved address as one ranked set: the dead one is
    // refused, the live one connects.
    let client = Host::builder().resolver(Some(resolver)).build().unwrap();
    let info = client.dial(&name).await.unwrap();
    assert_eq!(info.peer, id);
    assert_eq!(tcp_port(&info.remote_addr), tcp_port(&live));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_txt_answer_too_long_for_udp_is_fetched_over_tcp() {
    let (server, live) = listening_host().await;
    let id = server.peer_id();
    // 30 entries of ~90 bytes: about 3 KB, past a UDP answer's 512 bytes (and the
    // 1232 bytes EDNS allows).
    // Held all at once, so no two are the same (a zone refuses a duplicate record).
    let closed: Vec<ClosedPort> = (0..29).map(|_| ClosedPort::bind()).collect();
    let mut records: Vec<Rec> = closed
        .iter()
        .map(|c| {
            Rec::Txt(
                "_dnsaddr.big.example.test.",
                format!("dnsaddr=/ip4/127.0.0.1/tcp/{}/p2p/{id}", c.port()),
            )
        })
        .collect();
    records.push(Rec::Txt(
        "_dnsaddr.big.example.test.",
        format!("dnsaddr=/ip4/127.0.0.1/tcp/{}/p2p/{id}", tcp_port(&live)),
    ));
    let text_bytes: usize = records
        .iter()
        .map(|r| match r {
            Rec::Txt(_, t) => t.len(),
            Rec::A(..) => 0,
        })
        .sum();
    assert!(text_bytes > 1232, "{text_bytes}");
    let name: Multiaddr = format!("/dnsaddr/big.example.test/p2p/{id}")
        .parse()
        .unwrap();

    // Over UDP alone the answer comes back truncated: not all 30 entries.
    let (_udp_only, udp_at) = dns_server(&records, false).await;
    let udp = HickoryResolver::with_name_servers(&[udp_at]).unwrap();
    let partial = tokio::time::timeout(
        Duration::from_secs(20),
        dns::resolve(&udp, &name, None, &DnsLimits::default()),
    )
    .await
    .expect("a UDP-only lookup ends");
    assert!(
        !matches!(&partial, Ok(list) if list.len() == 30),
        "the whole answer came over UDP: {partial:?}"
    );

    // With TCP beside UDP the truncated answer is fetched again over TCP, whole.
    let (_dns, at) = dns_server(&records, true).await;
    let resolver = resolver(at);
    let all = dns::resolve(resolver.as_ref(), &name, None, &DnsLimits::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    // And the address bound holds.
    let bounded = DnsLimits {
        max_addrs: 8,
        ..DnsLimits::default()
    };
    assert_eq!(
        dns::resolve(resolver.as_ref(), &name, None, &bounded)
            .await
            .unwrap()
            .len(),
        8
    );

    // The dial ranks all 30; the 29 refusals each start the next at once.
    let client = Host::builder().resolver(Some(resolver)).build().unwrap();
    let started = std::time::Instant::now();
    let info = client.dial(&name).await.unwrap();
    assert_eq!(tcp_port(&info.remote_addr), tcp_port(&live));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    client.shutdown().await;
    server.shutdown().await;
}
