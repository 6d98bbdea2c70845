//! Whole exchanges between [`Server::serve`] and [`probe`] over in-memory streams,
//! with a stand-in for the host's dial-back, under a paused clock where timing
//! matters.

use crate::codec::{read_message, write_message};
use crate::proto::{message::Msg, DialDataResponse, DialRequest, Message};
use crate::test_support::stream_pair;
use crate::*;
use futures::channel::oneshot;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_upgrader::Budget;

/// What the stand-in dialer does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Dial-back over a real stream to the client's dial-back handler.
    Deliver,
    /// The same, with a nonce off by one.
    WrongNonce,
    /// The dial fails.
    Fail,
    /// Claims delivery without sending anything.
    Lie,
}

/// The client's pending probes by nonce, as the host's dial-back handler has them.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Multiaddr>>>>;

struct FakeDialer {
    behaviour: Behaviour,
    pending: Pending,
    /// The client's address on the dial-back connection.
    local: Multiaddr,
    dialed: Mutex<Vec<Multiaddr>>,
}

#[async_trait::async_trait]
impl DialBacker for FakeDialer {
    fn can_dial(&self, addr: &Multiaddr) -> bool {
        !addr.to_string().contains("/tcp/9")
    }

    async fn dial_back(&self, addr: &Multiaddr, nonce: u64, timeout: Duration) -> DialBackResult {
        self.dialed.lock().unwrap().push(addr.clone());
        let sent = match self.behaviour {
            Behaviour::Fail => return DialBackResult::DialFailed("connection refused".into()),
            Behaviour::Lie => return DialBackResult::Delivered,
            Behaviour::Deliver => nonce,
            Behaviour::WrongNonce => nonce ^ 1,
        };
        let (mut server, mut client) = stream_pair().await;
        let (pending, local) = (self.pending.clone(), self.local.clone());
        // The client's dial-back handler.
        tokio::spawn(async move {
            let Ok(nonce) = dial_back::read_nonce(&mut client, timeout).await else {
                return;
            };
            let waiter = pending.lock().unwrap().remove(&nonce);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(local);
                    let _ = dial_back::acknowledge(&mut client, timeout).await;
                }
                None => client.reset(),
            }
        });
        match dial_back::send_nonce(&mut server, sent, timeout).await {
            Ok(()) => DialBackResult::Delivered,
            Err(e) => DialBackResult::DialBackFailed(e.to_string()),
        }
    }
}

fn a(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn source(observed: &str) -> RequestSource {
    RequestSource {
        peer: PeerId::random(),
        observed_ip: Some(observed.parse::<IpAddr>().unwrap()),
        relayed: false,
        budget: Budget::unlimited(),
    }
}

fn dialer(behaviour: Behaviour) -> Arc<FakeDialer> {
    Arc::new(FakeDialer {
        behaviour,
        pending: Arc::default(),
        local: a("/ip4/10.0.0.2/tcp/4001"),
        dialed: Mutex::default(),
    })
}

/// Runs one probe of `addr` against `server` from `source`.
async fn exchange(
    server: Arc<Server>,
    dialer: Arc<FakeDialer>,
    source: RequestSource,
    addr: &Multiaddr,
    config: ProbeConfig,
) -> (
    Result<Evidence, ProbeError>,
    Result<ServeOutcome, ServerError>,
) {
    let (client_end, server_end) = stream_pair().await;
    let nonce: u64 = rand::random();
    let (tx, rx) = oneshot::channel();
    dialer.pending.lock().unwrap().insert(nonce, tx);
    let serving = {
        let dialer = dialer.clone();
        tokio::spawn(async move { server.serve(server_end, source, &*dialer).await })
    };
    let probed = probe(client_end, addr, nonce, rx, &config).await;
    (probed, serving.await.unwrap())
}

#[tokio::test]
async fn a_dialable_address_of_the_clients_ip_is_reachable_without_dial_data() {
    let server = Arc::new(Server::new(ServerConfig::default()));
    let d = dialer(Behaviour::Deliver);
    let addr = a("/ip4/8.8.8.8/tcp/4001");
    let (probed, served) = exchange(
        server.clone(),
        d.clone(),
        source("8.8.8.8"),
        &addr,
        ProbeConfig::default(),
    )
    .await;
    assert_eq!(probed.unwrap(), Evidence::Reachable);
    match served.unwrap() {
        ServeOutcome::Dialed {
            addr: dialed,
            dial_data,
            result,
        } => {
            assert_eq!(
                (dialed, dial_data, result),
                (addr, 0, DialBackResult::Delivered)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.in_progress(), 0, "the slot was given back");
}

#[tokio::test]
async fn another_ip_costs_dial_data_first() {
    let server = Arc::new(Server::new(
        ServerConfig::default().with_dial_data(40_000..=40_000),
    ));
    let d = dialer(Behaviour::Deliver);
    let addr = a("/ip4/9.9.9.9/tcp/4001");
    let (probed, served) =
        exchange(server, d, source("8.8.8.8"), &addr, ProbeConfig::default()).await;
    assert_eq!(probed.unwrap(), Evidence::Reachable);
    match served.unwrap() {
        ServeOutcome::Dialed { dial_data, .. } => {
            assert!((40_000..40_000 + 4096).contains(&dial_data), "{dial_data}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_will_not_pay_aborts_and_the_server_is_not_made_to_dial() {
    let server = Arc::new(Server::new(
        ServerConfig::default().with_dial_data(50_000..=50_000),
    ));
    let d = dialer(Behaviour::Deliver);
    let addr = a("/ip4/9.9.9.9/tcp/4001");
    let config = ProbeConfig::default().with_max_dial_data(10_000);
    let (probed, served) = exchange(server, d.clone(), source("8.8.8.8"), &addr, config).await;
    assert!(
        matches!(
            probed,
            Err(ProbeError::DialDataTooLarge { asked: 50_000, .. })
        ),
        "{probed:?}"
    );
    assert!(served.is_err(), "the client reset the stream");
    assert!(
        d.dialed.lock().unwrap().is_empty(),
        "no dial without the data"
    );
}

#[tokio::test]
async fn a_failed_dial_is_evidence_of_unreachability() {
    let server = Arc::new(Server::new(ServerConfig::default()));
    let d = dialer(Behaviour::Fail);
    let addr = a("/ip4/8.8.8.8/tcp/4001");
    let (probed, served) =
        exchange(server, d, source("8.8.8.8"), &addr, ProbeConfig::default()).await;
    assert_eq!(probed.unwrap(), Evidence::Unreachable);
    assert!(matches!(
        served.unwrap(),
        ServeOutcome::Dialed {
            result: DialBackResult::DialFailed(_),
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_nonce_proves_nothing() {
    let addr = a("/ip4/8.8.8.8/tcp/4001");
    // The dial-back carries another nonce: the client refuses it, the server
    // reports a dial-back error.
    let server = Arc::new(Server::new(ServerConfig::default()));
    let (probed, _) = exchange(
        server,
        dialer(Behaviour::WrongNonce),
        source("8.8.8.8"),
        &addr,
        ProbeConfig::default(),
    )
    .await;
    assert!(
        matches!(probed, Err(ProbeError::DialBackFailed)),
        "{probed:?}"
    );
    // A server that claims success without our nonce is discarded.
    let server = Arc::new(Server::new(ServerConfig::default()));
    let (probed, _) = exchange(
        server,
        dialer(Behaviour::Lie),
        source("8.8.8.8"),
        &addr,
        ProbeConfig::default(),
    )
    .await;
    assert!(matches!(probed, Err(ProbeError::NoDialBack)), "{probed:?}");
}

#[tokio::test]
async fn relayed_rate_limited_and_undialable_requests_are_answered_not_dialed() {
    let server = Arc::new(Server::new(
        ServerConfig::default().with_requests_per_minute(60, 1),
    ));
    let d = dialer(Behaviour::Deliver);
    let addr = a("/ip4/8.8.8.8/tcp/4001");
    let mut relayed = source("8.8.8.8");
    relayed.relayed = true;
    let (probed, served) = exchange(
        server.clone(),
        d.clone(),
        relayed,
        &addr,
        ProbeConfig::default(),
    )
    .await;
    assert!(matches!(probed, Err(ProbeError::Rejected)));
    assert_eq!(served.unwrap(), ServeOutcome::Rejected(Rejection::Relayed));
    let peer = source("8.8.8.8");
    let again = peer.clone();
    let (probed, _) = exchange(
        server.clone(),
        d.clone(),
        peer,
        &addr,
        ProbeConfig::default(),
    )
    .await;
    assert!(probed.is_ok());
    let (probed, served) = exchange(
        server.clone(),
        d.clone(),
        again,
        &addr,
        ProbeConfig::default(),
    )
    .await;
    assert!(matches!(probed, Err(ProbeError::Rejected)));
    assert_eq!(
        served.unwrap(),
        ServeOutcome::Rejected(Rejection::TooManyFromPeer(1))
    );
    let undialable = a("/ip4/8.8.8.8/tcp/9");
    let (probed, served) = exchange(
        server,
        d,
        source("8.8.8.8"),
        &undialable,
        ProbeConfig::default(),
    )
    .await;
    assert!(matches!(probed, Err(ProbeError::Refused)));
    assert_eq!(served.unwrap(), ServeOutcome::Refused);
}

#[tokio::test]
async fn bad_client_messages_are_protocol_errors() {
    let server = Arc::new(Server::new(
        ServerConfig::default().with_dial_data(10_000..=10_000),
    ));
    let d = dialer(Behaviour::Deliver);
    // A DialDataResponse first.
    let (mut client, server_end) = stream_pair().await;
    let serving = {
        let (server, d) = (server.clone(), d.clone());
        tokio::spawn(async move { server.serve(server_end, source("8.8.8.8"), &*d).await })
    };
    let data = Message::new(Msg::DialDataResponse(DialDataResponse { data: vec![1] }));
    write_message(&mut client, &data).await.unwrap();
    let r = serving.await.unwrap();
    assert!(
        matches!(
            r,
            Err(ServerError::Protocol {
                step: Step::ReadRequest,
                ..
            })
        ),
        "{r:?}"
    );
    // An oversized dial data chunk.
    let (mut client, server_end) = stream_pair().await;
    let serving = {
        let (server, d) = (server.clone(), d.clone());
        tokio::spawn(async move { server.serve(server_end, source("8.8.8.8"), &*d).await })
    };
    let request = Message::new(Msg::DialRequest(DialRequest {
        addrs: vec![a("/ip4/9.9.9.9/tcp/1").to_vec()],
        nonce: 1,
    }));
    write_message(&mut client, &request).await.unwrap();
    let mut buf = Vec::new();
    let ask: Message = read_message(&mut client, &mut buf).await.unwrap();
    assert_eq!(ask.kind(), "DialDataRequest");
    let big = Message::new(Msg::DialDataResponse(DialDataResponse {
        data: vec![0; 5000],
    }));
    write_message(&mut client, &big).await.unwrap();
    let r = serving.await.unwrap();
    assert!(
        matches!(
            r,
            Err(ServerError::Protocol {
                step: Step::ReadDialData,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(d.dialed.lock().unwrap().is_empty());
    // An oversized frame is refused from its prefix.
    let (mut client, server_end) = stream_pair().await;
    let serving = {
        let (server, d) = (server.clone(), d.clone());
        tokio::spawn(async move { server.serve(server_end, source("8.8.8.8"), &*d).await })
    };
    futures::AsyncWriteExt::write_all(&mut client, &[0xff, 0xff, 0x01])
        .await
        .unwrap();
    let r = serving.await.unwrap();
    assert!(
        matches!(
            r,
            Err(ServerError::Codec {
                step: Step::ReadRequest,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(server.in_progress(), 0);
}

#[tokio::test(start_paused = true)]
async fn silent_peers_time_out_on_both_sides() {
    let config = ServerConfig::default().with_dial_data(10_000..=10_000);
    let message_timeout = config.message_timeout;
    let server = Arc::new(Server::new(config));
    let d = dialer(Behaviour::Deliver);
    // A client that never sends its request.
    let (_client, server_end) = stream_pair().await;
    let r = server.serve(server_end, source("8.8.8.8"), &*d).await;
    assert!(
        matches!(r, Err(ServerError::Timeout { step: Step::ReadRequest, after }) if after == message_timeout),
        "{r:?}"
    );
    // A client that stops sending dial data halfway.
    let (mut client, server_end) = stream_pair().await;
    let serving = {
        let (server, d) = (server.clone(), d.clone());
        tokio::spawn(async move { server.serve(server_end, source("8.8.8.8"), &*d).await })
    };
    let request = Message::new(Msg::DialRequest(DialRequest {
        addrs: vec![a("/ip4/9.9.9.9/tcp/1").to_vec()],
        nonce: 1,
    }));
    write_message(&mut client, &request).await.unwrap();
    let chunk = Message::new(Msg::DialDataResponse(DialDataResponse {
        data: vec![0; 4096],
    }));
    write_message(&mut client, &chunk).await.unwrap();
    let r = serving.await.unwrap();
    assert!(
        matches!(
            r,
            Err(ServerError::Timeout {
                step: Step::ReadDialData,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        server.in_progress(),
        0,
        "a timed-out request gives its slot back"
    );
    // A server that never answers.
    let (client_end, _server_end) = stream_pair().await;
    let (_tx, rx) = oneshot::channel();
    let config = ProbeConfig::default();
    let r = probe(client_end, &a("/ip4/8.8.8.8/tcp/1"), 1, rx, &config).await;
    assert!(
        matches!(r, Err(ProbeError::Timeout { step: Step::ReadResponse, after }) if after == config.response_timeout),
        "{r:?}"
    );
}
