//! AutoNAT v2 between weft and rust-libp2p (`libp2p-autonat` 0.16, feature `v2`), in
//! both roles, on 127.0.0.1 (loopback taken as public by weft's classifier; the
//! rust-libp2p server dials whatever it is asked to):
//!
//! - a weft client with three stock rust-libp2p servers: its listen address is
//!   confirmed reachable, a port nobody listens on unreachable;
//! - a stock rust-libp2p client with a weft server: the weft server dials it back
//!   from its listener-less dial-back host, and the rust client confirms its address.

use futures::StreamExt;
use libp2p::autonat::v2::{client as rust_client, server as rust_server};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, SwarmBuilder};
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::autonat::{
    AutonatClientConfig, Reachability, ServerConfig, Verdict, DIAL_REQUEST_PROTOCOL,
};
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::{DialConfig, Event, Host};
use weft_interop_tests::ClosedTcpPort;

const WAIT: Duration = Duration::from_secs(30);

fn loopback_public() -> DialConfig {
    DialConfig::default().with_classifier(Classifier::new().with_public(&[AddrClass::Loopback]))
}

fn loopback_tcp() -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::Ip4([127, 0, 0, 1].into()))
        .with(Protocol::Tcp(0))
}

#[derive(NetworkBehaviour)]
struct ServerBehaviour {
    autonat: rust_server::Behaviour,
    identify: identify::Behaviour,
}

#[derive(NetworkBehaviour)]
struct ClientBehaviour {
    autonat: rust_client::Behaviour,
    identify: identify::Behaviour,
}

/// A stock rust-libp2p AutoNAT v2 server (TCP, Noise, yamux, identify) running on
/// its own task; returns its address with `/p2p/`.
async fn rust_autonat_server() -> Multiaddr {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| ServerBehaviour {
            autonat: rust_server::Behaviour::default(),
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let peer = *swarm.local_peer_id();
    swarm.listen_on(loopback_tcp()).unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with(Protocol::P2p(peer));
        }
    };
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(ServerBehaviourEvent::Autonat(e)) =
                swarm.select_next_some().await
            {
                tracing::debug!(?e, "rust-libp2p server tested an address");
            }
        }
    });
    addr
}

async fn verdict_on(host: &Host, rx: &mut broadcast::Receiver<Event>, addr: &Multiaddr) -> Verdict {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let current = host.reachability().into_iter().find(|(a, _)| a == addr);
            if let Some((_, v)) = current.filter(|(_, v)| v.is_confirmed()) {
                return v;
            }
            match rx.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no verdict on {addr}: {:?}", host.reachability()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weft_client_gets_verdicts_from_rust_libp2p_servers() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(rust_autonat_server().await);
    }
    let client = Host::builder()
        .dial_config(loopback_public())
        .autonat_client(AutonatClientConfig::default())
        .build()
        .unwrap();
    let mut rx = client.subscribe();
    let listen = client.listen(&loopback_tcp()).await.unwrap().remove(0);
    let closed = ClosedTcpPort::bind().unwrap();
    let dead = Multiaddr::empty()
        .with(Protocol::Ip4([127, 0, 0, 1].into()))
        .with(Protocol::Tcp(closed.port()));
    client.add_external_addr(dead.clone());
    for addr in &servers {
        client.dial(addr).await.unwrap();
    }
    let v = verdict_on(&client, &mut rx, &listen).await;
    assert_eq!(v.reachability, Reachability::Reachable, "{v}");
    assert_eq!(v.successes, 3, "{v}");
    let v = verdict_on(&client, &mut rx, &dead).await;
    assert_eq!(v.reachability, Reachability::Unreachable, "{v}");
    assert_eq!(v.failures, 3, "{v}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_libp2p_client_is_dialed_back_by_a_weft_server() {
    let server = Host::builder()
        .dial_config(loopback_public())
        .autonat_server(ServerConfig::default())
        .build()
        .unwrap();
    let server_addr = server
        .listen(&loopback_tcp())
        .await
        .unwrap()
        .remove(0)
        .with(Protocol::P2p(server.peer_id()));
    assert!(server
        .protocols()
        .iter()
        .any(|p| p == DIAL_REQUEST_PROTOCOL));

    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| ClientBehaviour {
            autonat: rust_client::Behaviour::new(
                rand::make_rng(),
                rust_client::Config::default().with_probe_interval(Duration::from_millis(500)),
            ),
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.listen_on(loopback_tcp()).unwrap();
    let listen = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    swarm.dial(server_addr).unwrap();
    let (event, confirmed) = tokio::time::timeout(WAIT, async {
        let mut confirmed = None;
        let mut tested = None;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(ClientBehaviourEvent::Autonat(e)) => tested = Some(e),
                SwarmEvent::ExternalAddrConfirmed { address } => confirmed = Some(address),
                _ => {}
            }
            match (tested.take(), confirmed.take()) {
                (Some(t), Some(c)) => return (t, c),
                (t, c) => (tested, confirmed) = (t, c),
            }
        }
    })
    .await
    .expect("the rust-libp2p client finished a probe in time");
    assert!(event.result.is_ok(), "{:?}", event.result);
    assert_eq!(event.server, server.peer_id());
    assert_eq!(event.tested_addr, listen);
    assert_eq!(event.bytes_sent, 0, "same IP: no dial data");
    assert_eq!(confirmed, listen);
    server.shutdown().await;
}
