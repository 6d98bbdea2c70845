//! The resource manager end to end over TCP: denials are typed errors naming their
//! scope and resource, at dial time, at stream open and (inbound) as `na` during
//! multistream-select; connections and streams give everything back.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::io::ErrorKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_host::{
    DialError, HandlerOptions, Host, Limits, Multiaddr, Protocol, ResourceManager, StreamError,
};
use weft_resource_manager::{Resource, ScopeLimit, ScopeName};
use weft_upgrader::{BoxedIo, Budget, Muxed, MuxerError, Priority, Reservation, Role, StreamMuxer};

const HOLD: &str = "/hold/1.0.0";

async fn hold_server(limits: Limits) -> (Host, Multiaddr) {
    let server = Host::builder()
        .resource_manager(ResourceManager::new(limits))
        .build()
        .unwrap();
    // No per-peer slot of the handler's own: only the resource manager limits.
    server.set_handler_with(
        HOLD,
        HandlerOptions::default().with_max_inbound_streams_per_peer(None),
        |mut s| async move {
            let _ = s.write_all(b"ok").await;
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        },
    );
    let addr = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    (server, addr)
}

#[tokio::test]
async fn a_dial_over_the_system_connection_limit_names_the_scope() {
    let (server, addr) = hold_server(Limits::auto()).await;
    let mut limits = Limits::auto();
    limits.system.connections_outbound = 0;
    let client = Host::builder()
        .resource_manager(ResourceManager::new(limits))
        .build()
        .unwrap();
    match client.dial(&addr).await {
        Err(DialError::Resource(e)) => {
            assert_eq!(
                (e.scope.clone(), e.resource),
                (ScopeName::System, Resource::ConnectionsOutbound)
            );
            assert!(e.to_string().contains("system"), "{e}");
        }
        other => panic!("expected a resource denial, got {other:?}"),
    }
    assert!(client.resource_manager().stats().system.is_zero());
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn streams_over_a_protocol_peer_limit_are_denied_on_both_sides() {
    let one = ScopeLimit {
        streams_inbound: 1,
        streams_outbound: 1,
        ..ScopeLimit::UNLIMITED
    };
    let (server, addr) = hold_server(Limits::auto().with_protocol_peer(HOLD, one)).await;
    // Inbound: the server answers na to the second stream of one peer.
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    let mut first = client.new_stream(server.peer_id(), &[HOLD]).await.unwrap();
    let mut ok = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), first.read_exact(&mut ok))
        .await
        .unwrap()
        .unwrap();
    let mut second = client.new_stream(server.peer_id(), &[HOLD]).await.unwrap();
    second.write_all(b"x").await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), second.read(&mut ok))
        .await
        .unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    drop(second);
    drop(first);

    // Outbound: the client's own limit refuses the second stream with a typed error.
    let limited = Host::builder()
        .resource_manager(ResourceManager::new(
            Limits::auto().with_protocol_peer(HOLD, one),
        ))
        .build()
        .unwrap();
    limited.dial(&addr).await.unwrap();
    let _held = limited.new_stream(server.peer_id(), &[HOLD]).await.unwrap();
    match limited.new_stream(server.peer_id(), &[HOLD]).await {
        Err(StreamError::Resource(e)) => {
            assert_eq!(e.scope, ScopeName::ProtocolPeer(HOLD.to_string()));
            assert_eq!(e.resource, Resource::StreamsOutbound);
        }
        other => panic!("expected a resource denial, got {other:?}"),
    }
    for h in [client, limited, server] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn closed_connections_give_every_resource_back() {
    let (server, addr) = hold_server(Limits::auto()).await;
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    let mut s = client.new_stream(server.peer_id(), &[HOLD]).await.unwrap();
    let mut ok = [0u8; 2];
    s.read_exact(&mut ok).await.unwrap();
    let stats = server.resource_manager().stats();
    assert_eq!(stats.system.get(Resource::ConnectionsInbound), 1);
    assert_eq!(
        stats.system.get(Resource::FileDescriptors),
        1,
        "TCP uses an fd"
    );
    assert_eq!(stats.peers, 1);
    assert!(stats.protocols.contains_key(HOLD));
    drop(s);
    client.disconnect(&server.peer_id()).await;
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stats = server.resource_manager().stats();
            if stats.system.is_zero() && stats.transient.is_zero() && stats.peers == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "left over: {:?}",
        server.resource_manager().stats()
    );
    assert!(client.resource_manager().stats().system.is_zero());
    client.shutdown().await;
    server.shutdown().await;
}

/// yamux, reserving `reserve` bytes from the connection's budget at the upgrade the way
/// a muxer charges its buffers; records what the budget said.
struct Charging {
    inner: weft_muxer_yamux::Yamux,
    reserve: usize,
    held: Arc<Mutex<Vec<Result<Reservation, String>>>>,
}

impl StreamMuxer for Charging {
    fn protocol_id(&self) -> &str {
        self.inner.protocol_id()
    }

    fn upgrade(&self, io: BoxedIo, role: Role) -> Result<Muxed, MuxerError> {
        self.upgrade_with_budget(io, role, Budget::unlimited())
    }

    fn upgrade_with_budget(
        &self,
        io: BoxedIo,
        role: Role,
        budget: Budget,
    ) -> Result<Muxed, MuxerError> {
        let reserved = if budget.is_unlimited() {
            Err("the host passed no budget".to_string())
        } else {
            budget.reserve(self.reserve, Priority::HIGH).map_err(|e| {
                let named = e
                    .reason
                    .downcast_ref::<weft_host::ResourceError>()
                    .map(|r| format!("{:?} {:?}", r.scope, r.resource));
                named.unwrap_or_else(|| e.to_string())
            })
        };
        self.held.lock().unwrap().push(reserved);
        self.inner.upgrade_with_budget(io, role, budget)
    }
}

#[tokio::test]
async fn the_muxer_charges_the_connection_scope_through_the_budget() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let mut limits = Limits::auto();
    limits.connection.memory = 4 << 20;
    let server = Host::builder()
        .muxer(Arc::new(Charging {
            inner: weft_muxer_yamux::Yamux::new(),
            reserve: 3 << 20,
            held: held.clone(),
        }))
        .resource_manager(ResourceManager::new(limits))
        .build()
        .unwrap();
    let addr = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();
    wait_for(|| held.lock().unwrap().len() == 1).await;
    // 3 MiB fit the 4 MiB connection scope at high priority; it is charged up to the
    // system scope.
    {
        let reservations = held.lock().unwrap();
        assert_eq!(reservations.len(), 1);
        assert!(reservations[0].is_ok(), "{:?}", reservations[0]);
    }
    assert!(
        server
            .resource_manager()
            .stats()
            .system
            .get(Resource::Memory)
            >= 3 << 20
    );
    // A second connection's muxer is denied by its connection scope: the denial names it.
    let other = Host::builder().build().unwrap();
    let mut charging_more = Limits::auto();
    charging_more.connection.memory = 1 << 20;
    let small = Host::builder()
        .muxer(Arc::new(Charging {
            inner: weft_muxer_yamux::Yamux::new(),
            reserve: 3 << 20,
            held: held.clone(),
        }))
        .resource_manager(ResourceManager::new(charging_more))
        .build()
        .unwrap();
    let small_addr = small
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(Protocol::P2p(small.peer_id()));
    other.dial(&small_addr).await.unwrap();
    wait_for(|| held.lock().unwrap().len() == 2).await;
    {
        let reservations = held.lock().unwrap();
        assert_eq!(reservations.len(), 2);
        let denied = reservations[1]
            .as_ref()
            .expect_err("over the connection scope");
        assert_eq!(denied, "Connection Memory");
    }
    // Giving the reservation back returns it to every scope (what stays is the open
    // connection's own buffers, such as Noise's read buffer).
    let memory = || {
        server
            .resource_manager()
            .stats()
            .system
            .get(Resource::Memory)
    };
    let with = memory();
    held.lock().unwrap().clear();
    assert_eq!(with - memory(), 3 << 20);
    for h in [client, other, small, server] {
        h.shutdown().await;
    }
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the listener did not upgrade the connection in time");
}
