//! A relay, a peer that reserves and a peer that connects through it, over yamux
//! connections on 127.0.0.1 (no host: the streams are plain yamux streams, as a
//! host hands them over after negotiating `hop` or `stop`).

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_relay::{
    ClientError, HopOutcome, HopSource, Relay, RelayConfig, SpliceEnd, Status, StopOpener,
};
use weft_upgrader::{BoxedStream, Budget, MuxedConnection, Role, StreamMuxer};

const WAIT: Duration = Duration::from_secs(10);

/// A yamux connection over TCP on 127.0.0.1: (dialer's handle, listener's handle).
async fn connection() -> (Arc<dyn MuxedConnection>, Arc<dyn MuxedConnection>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let yamux = weft_muxer_yamux::Yamux::new();
    let client = yamux
        .upgrade(Box::new(dialed.unwrap().compat()), Role::Initiator)
        .unwrap();
    let server = yamux
        .upgrade(Box::new(accepted.unwrap().0.compat()), Role::Responder)
        .unwrap();
    let handles = (client.connection.clone(), server.connection.clone());
    tokio::spawn(client.driver);
    tokio::spawn(server.driver);
    handles
}

/// Opens the stop stream on the relay's connection to the one peer it knows.
struct OneTarget {
    target: PeerId,
    connection: Arc<dyn MuxedConnection>,
}

#[async_trait::async_trait]
impl StopOpener for OneTarget {
    async fn open_stop(&self, target: PeerId) -> std::io::Result<BoxedStream> {
        if target != self.target {
            return Err(std::io::ErrorKind::NotConnected.into());
        }
        self.connection
            .open_stream()
            .await
            .map_err(std::io::Error::other)
    }
}

struct Setup {
    relay: Arc<Relay>,
    relay_id: PeerId,
    a: PeerId,
    a_to_relay: Arc<dyn MuxedConnection>,
    b_to_relay: Arc<dyn MuxedConnection>,
    outcomes: tokio::sync::mpsc::UnboundedReceiver<Result<HopOutcome, String>>,
}

/// R serves every stream A and B open to it as a hop stream; A answers R's stop
/// streams by echoing on the circuit.
async fn setup(config: RelayConfig) -> Setup {
    setup_with(config, Budget::unlimited(), false).await
}

/// [`setup`], with the budget circuits are charged to and whether R sees its
/// connections as relayed.
async fn setup_with(config: RelayConfig, budget: Budget, relayed: bool) -> Setup {
    let relay_key = Keypair::generate_ed25519();
    let relay_id = relay_key.public().to_peer_id();
    let relay = Arc::new(Relay::new(relay_key, config));
    let (a, b) = (PeerId::random(), PeerId::random());
    let (a_to_relay, relay_from_a) = connection().await;
    let (b_to_relay, relay_from_b) = connection().await;
    let opener = Arc::new(OneTarget {
        target: a,
        connection: relay_from_a.clone(),
    });
    let (tx, outcomes) = tokio::sync::mpsc::unbounded_channel();
    for (peer, conn) in [(a, relay_from_a), (b, relay_from_b)] {
        let (relay, opener, tx) = (relay.clone(), opener.clone(), tx.clone());
        let budget = budget.clone();
        tokio::spawn(async move {
            while let Ok(stream) = conn.accept_stream().await {
                let (relay, opener, tx) = (relay.clone(), opener.clone(), tx.clone());
                let budget = budget.clone();
                tokio::spawn(async move {
                    let source = HopSource {
                        peer,
                        ip: Some([127, 0, 0, 1].into()),
                        relayed,
                        relay_addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
                        budget,
                    };
                    let r = relay.serve_hop(stream, source, opener.as_ref()).await;
                    let _ = tx.send(r.map_err(|e| e.to_string()));
                });
            }
        });
    }
    // A: every inbound stream is a stop stream from R; echo on the circuit.
    let a_conn = a_to_relay.clone();
    tokio::spawn(async move {
        while let Ok(stream) = a_conn.accept_stream().await {
            tokio::spawn(async move {
                let request = weft_relay::read_stop(stream, relay_id, WAIT).await.unwrap();
                let mut circuit = request.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                loop {
                    match circuit.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if circuit.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = circuit.close().await;
            });
        }
    });
    Setup {
        relay,
        relay_id,
        a,
        a_to_relay,
        b_to_relay,
        outcomes,
    }
}

#[tokio::test]
async fn a_reserved_peer_is_reached_through_the_relay() {
    let mut s = setup(RelayConfig::default()).await;
    // Without a reservation, B is told so.
    let hop = s.b_to_relay.open_stream().await.unwrap();
    let refused = weft_relay::connect(hop, s.relay_id, s.a, WAIT).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused {
                status: Status::NoReservation,
                ..
            })
        ),
        "{refused:?}"
    );
    s.outcomes.recv().await.unwrap().unwrap_err();

    let mut hop = s.a_to_relay.open_stream().await.unwrap();
    let info = weft_relay::reserve(&mut hop, s.relay_id, s.a, WAIT)
        .await
        .unwrap();
    let voucher = info.voucher.clone().expect("a weft relay sends a voucher");
    assert_eq!((voucher.relay, voucher.peer), (s.relay_id, s.a));
    assert_eq!(voucher.expiration, info.expire);
    let relay_addr: multiaddr::Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{}", s.relay_id)
        .parse()
        .unwrap();
    assert_eq!(info.addrs, vec![relay_addr]);
    assert_eq!(info.limit, RelayConfig::default().limit());
    assert!(matches!(
        s.outcomes.recv().await.unwrap(),
        Ok(HopOutcome::Reserved { peer, .. }) if peer == s.a
    ));
    assert!(s.relay.has_reservation(&s.a));

    let hop = s.b_to_relay.open_stream().await.unwrap();
    let mut circuit = weft_relay::connect(hop, s.relay_id, s.a, WAIT)
        .await
        .unwrap();
    assert_eq!(circuit.remote(), s.a);
    assert!(circuit.is_limited());
    assert_eq!(circuit.data_limit(), Some(1 << 17));
    circuit.write_all(b"through the relay").await.unwrap();
    let mut echoed = [0u8; 17];
    circuit.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"through the relay");
    assert_eq!(s.relay.circuits(), 1);
    circuit.close().await.unwrap();
    let mut rest = Vec::new();
    circuit.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    let outcome = tokio::time::timeout(WAIT, s.outcomes.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match outcome {
        HopOutcome::Relayed { src, dst, report } => {
            assert_eq!(dst, s.a);
            assert_ne!(src, s.a);
            assert_eq!(report.end, SpliceEnd::Closed);
            assert_eq!((report.a_to_b, report.b_to_a), (17, 17));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.relay.circuits(), 0, "the slot came back");

    // A disconnect ends the reservation.
    s.relay.peer_disconnected(&s.a);
    assert!(!s.relay.has_reservation(&s.a));
}

#[tokio::test]
async fn the_data_limit_ends_the_circuit() {
    let mut s = setup(RelayConfig::default().with_max_circuit_bytes(Some(4096))).await;
    let mut hop = s.a_to_relay.open_stream().await.unwrap();
    weft_relay::reserve(&mut hop, s.relay_id, s.a, WAIT)
        .await
        .unwrap();
    s.outcomes.recv().await.unwrap().unwrap();
    let hop = s.b_to_relay.open_stream().await.unwrap();
    let mut circuit = weft_relay::connect(hop, s.relay_id, s.a, WAIT)
        .await
        .unwrap();
    assert_eq!(circuit.data_limit(), Some(4096));
    // Up to the limit the echo comes back; past it both sides are reset.
    circuit.write_all(&[7u8; 4096]).await.unwrap();
    let mut echoed = vec![0u8; 4096];
    circuit.read_exact(&mut echoed).await.unwrap();
    let _ = circuit.write_all(&[8u8; 100]).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, circuit.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(read.is_err(), "the relay resets the circuit: {read:?}");
    match s.outcomes.recv().await.unwrap().unwrap() {
        HopOutcome::Relayed { report, .. } => assert_eq!(report.end, SpliceEnd::DataLimit),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_reservation_over_the_limit_is_refused() {
    let mut s = setup(RelayConfig::default().with_max_reservations(0)).await;
    let mut hop = s.a_to_relay.open_stream().await.unwrap();
    let refused = weft_relay::reserve(&mut hop, s.relay_id, s.a, WAIT).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused {
                status: Status::ReservationRefused,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(s.outcomes.recv().await.unwrap().is_err());
}

/// A budget that grants nothing.
struct Exhausted;

impl weft_upgrader::MemoryBudget for Exhausted {
    fn try_reserve(
        &self,
        bytes: usize,
        _priority: weft_upgrader::Priority,
    ) -> Result<(), weft_upgrader::BudgetDenied> {
        Err(weft_upgrader::BudgetDenied {
            requested: bytes,
            reason: "exhausted".into(),
        })
    }

    fn release(&self, _bytes: usize) {}
}

#[tokio::test]
async fn a_circuit_whose_buffers_the_budget_denies_is_refused() {
    let mut s = setup_with(
        RelayConfig::default(),
        Budget::new(Arc::new(Exhausted)),
        false,
    )
    .await;
    let mut hop = s.a_to_relay.open_stream().await.unwrap();
    weft_relay::reserve(&mut hop, s.relay_id, s.a, WAIT)
        .await
        .unwrap();
    s.outcomes.recv().await.unwrap().unwrap();
    let hop = s.b_to_relay.open_stream().await.unwrap();
    let refused = weft_relay::connect(hop, s.relay_id, s.a, WAIT).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused {
                status: Status::ResourceLimitExceeded,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(s.relay.circuits(), 0, "the refused circuit holds no slot");
}

#[tokio::test]
async fn nothing_is_served_over_a_relayed_connection() {
    let mut s = setup_with(RelayConfig::default(), Budget::unlimited(), true).await;
    let mut hop = s.a_to_relay.open_stream().await.unwrap();
    let refused = weft_relay::reserve(&mut hop, s.relay_id, s.a, WAIT).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused {
                status: Status::PermissionDenied,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(s.outcomes.recv().await.unwrap().is_err());
    assert_eq!(s.relay.reservations(), 0);
}
