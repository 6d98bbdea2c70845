//! rust-libp2p under test (`libp2p` 0.57): a `Swarm` with identify (weft's host runs
//! identify on every connection too) and a small stream behaviour written here, driven
//! by one task that takes commands over a channel, the way `libp2p-stream` works.
//! Inbound perf and echo streams are served by the same code as weft's.

use crate::stack::{BenchResult, BoxedStream, Node, Security, Stack, Target};
use crate::stack::{ECHO, PERF};
use crate::wire;
use futures::channel::{mpsc, oneshot};
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, SwarmEvent, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{identify, noise, tcp, tls, yamux, Multiaddr, PeerId, Stream, StreamProtocol};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::Duration;

/// rust-libp2p.
pub struct Libp2p;

/// A handle on a swarm task.
#[derive(Clone)]
pub struct Libp2pNode {
    commands: mpsc::UnboundedSender<Command>,
}

/// A connection of a [`Libp2pNode`].
#[derive(Clone, Copy)]
pub struct Libp2pConn {
    peer: PeerId,
    id: ConnectionId,
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// What the swarm task is asked to do.
enum Command {
    Listen(Multiaddr, Reply<Multiaddr>),
    Dial(Target, Reply<Libp2pConn>),
    Open(Libp2pConn, StreamProtocol, Reply<Stream>),
    Close(ConnectionId, oneshot::Sender<()>),
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    identify: identify::Behaviour,
    streams: Streams,
}

fn build_swarm(security: Security) -> BenchResult<libp2p::Swarm<Behaviour>> {
    let (inbound, streams) = mpsc::unbounded();
    tokio::spawn(serve_inbound(streams));
    let behaviour = move |key: &libp2p::identity::Keypair| Behaviour {
        identify: identify::Behaviour::new(identify::Config::new(
            "ipfs/0.1.0".into(),
            key.public(),
        )),
        streams: Streams {
            inbound: inbound.clone(),
            pending: VecDeque::new(),
        },
    };
    // Idle connections stay open (the memory figures need them; weft keeps them too).
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(3600));
    let builder = libp2p::SwarmBuilder::with_new_identity().with_tokio();
    let tcp = tcp::Config::default().nodelay(true);
    let swarm = match security {
        Security::Noise => builder
            .with_tcp(tcp, noise::Config::new, yamux::Config::default)?
            .with_behaviour(behaviour)?
            .with_swarm_config(idle)
            .build(),
        Security::Tls => builder
            .with_tcp(tcp, tls::Config::new, yamux::Config::default)?
            .with_behaviour(behaviour)?
            .with_swarm_config(idle)
            .build(),
        // As rust-libp2p's users get it: `libp2p::quic::tokio::Transport` with its
        // default `Config` (what `SwarmBuilder::with_quic` builds).
        Security::Quic => builder
            .with_quic()
            .with_behaviour(behaviour)?
            .with_swarm_config(idle)
            .build(),
    };
    Ok(swarm)
}

/// Serves every inbound stream on its own task.
async fn serve_inbound(mut streams: mpsc::UnboundedReceiver<(StreamProtocol, Stream)>) {
    while let Some((protocol, mut stream)) = streams.next().await {
        tokio::spawn(async move {
            if protocol.as_ref() == PERF {
                let _ = weft_host::perf::serve(&mut stream).await;
            } else {
                let _ = wire::serve_echo(&mut stream).await;
            }
        });
    }
}

/// Runs the swarm and answers commands, until every handle is dropped.
async fn drive(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut listens: Vec<Reply<Multiaddr>> = Vec::new();
    let mut dials: HashMap<ConnectionId, (PeerId, Reply<Libp2pConn>)> = HashMap::new();
    let mut closes: HashMap<ConnectionId, oneshot::Sender<()>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.next() => match command {
                None => return,
                Some(Command::Listen(addr, reply)) => match swarm.listen_on(addr) {
                    Ok(_) => listens.push(reply),
                    Err(e) => { let _ = reply.send(Err(e.to_string())); }
                },
                Some(Command::Dial(target, reply)) => {
                    let opts = DialOpts::peer_id(target.peer)
                        .addresses(vec![target.multiaddr()])
                        .condition(PeerCondition::Always)
                        .build();
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => { dials.insert(id, (target.peer, reply)); }
                        Err(e) => { let _ = reply.send(Err(e.to_string())); }
                    }
                }
                Some(Command::Open(conn, protocol, reply)) => {
                    swarm.behaviour_mut().streams.pending.push_back(ToSwarm::NotifyHandler {
                        peer_id: conn.peer,
                        handler: NotifyHandler::One(conn.id),
                        event: OpenRequest { protocol, reply },
                    });
                }
                Some(Command::Close(id, reply)) => {
                    if swarm.close_connection(id) {
                        closes.insert(id, reply);
                    } else {
                        let _ = reply.send(());
                    }
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    if let Some(reply) = listens.pop() {
                        let _ = reply.send(Ok(address));
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. } => {
                    if let Some((peer, reply)) = dials.remove(&connection_id) {
                        let result = if peer == peer_id {
                            Ok(Libp2pConn { peer, id: connection_id })
                        } else {
                            Err(format!("dialed {peer}, reached {peer_id}"))
                        };
                        let _ = reply.send(result);
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some((_, reply)) = dials.remove(&connection_id) {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
                SwarmEvent::ConnectionClosed { connection_id, .. } => {
                    if let Some(reply) = closes.remove(&connection_id) {
                        let _ = reply.send(());
                    }
                }
                _ => {}
            },
        }
    }
}

impl Libp2pNode {
    fn start(security: Security) -> BenchResult<(Libp2pNode, PeerId)> {
        let swarm = build_swarm(security)?;
        let peer = *swarm.local_peer_id();
        let (commands, receiver) = mpsc::unbounded();
        tokio::spawn(drive(swarm, receiver));
        Ok((Libp2pNode { commands }, peer))
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> BenchResult<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .unbounded_send(command(reply))
            .map_err(|_| "swarm task is gone")?;
        Ok(answer
            .await
            .map_err(|_| "swarm task dropped the request")??)
    }
}

impl Stack for Libp2p {
    type Node = Libp2pNode;
    const NAME: &'static str = "rust-libp2p";

    async fn server(security: Security) -> BenchResult<(Libp2pNode, Target)> {
        let (node, peer) = Libp2pNode::start(security)?;
        let listen: Multiaddr = security.listen_addr();
        let addr = node.ask(|reply| Command::Listen(listen, reply)).await?;
        let target = Target::at(&addr, peer)?;
        Ok((node, target))
    }

    async fn client(security: Security) -> BenchResult<Libp2pNode> {
        Ok(Libp2pNode::start(security)?.0)
    }
}

impl Node for Libp2pNode {
    type Conn = Libp2pConn;

    fn dial(&self, target: Target) -> BoxFuture<'static, BenchResult<Libp2pConn>> {
        let node = self.clone();
        async move { node.ask(|reply| Command::Dial(target, reply)).await }.boxed()
    }

    fn open(
        &self,
        conn: &Libp2pConn,
        protocol: &'static str,
    ) -> BoxFuture<'static, BenchResult<BoxedStream>> {
        let node = self.clone();
        let conn = *conn;
        async move {
            let stream = node
                .ask(|reply| Command::Open(conn, StreamProtocol::new(protocol), reply))
                .await?;
            Ok(Box::new(stream) as BoxedStream)
        }
        .boxed()
    }

    fn close(&self, conn: Libp2pConn) -> BoxFuture<'static, ()> {
        let commands = self.commands.clone();
        async move {
            let (reply, closed) = oneshot::channel();
            if commands
                .unbounded_send(Command::Close(conn.id, reply))
                .is_ok()
            {
                let _ = closed.await;
            }
        }
        .boxed()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        // The swarm task ends when the last handle is dropped.
        async {}.boxed()
    }
}

/// A request to a connection handler: open a stream for `protocol`.
#[derive(Debug)]
struct OpenRequest {
    protocol: StreamProtocol,
    reply: Reply<Stream>,
}

/// The stream behaviour: hands inbound streams to a channel, opens outbound ones on
/// request and answers through the request's oneshot.
struct Streams {
    inbound: mpsc::UnboundedSender<(StreamProtocol, Stream)>,
    pending: VecDeque<ToSwarm<Infallible, OpenRequest>>,
}

impl NetworkBehaviour for Streams {
    type ConnectionHandler = StreamHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(StreamHandler::new(self.inbound.clone()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(StreamHandler::new(self.inbound.clone()))
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

/// Per-connection handler of [`Streams`].
struct StreamHandler {
    inbound: mpsc::UnboundedSender<(StreamProtocol, Stream)>,
    to_open: VecDeque<OpenRequest>,
}

impl StreamHandler {
    fn new(inbound: mpsc::UnboundedSender<(StreamProtocol, Stream)>) -> Self {
        StreamHandler {
            inbound,
            to_open: VecDeque::new(),
        }
    }
}

impl ConnectionHandler for StreamHandler {
    type FromBehaviour = OpenRequest;
    type ToBehaviour = Infallible;
    type InboundProtocol = Protocols;
    type OutboundProtocol = Protocols;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Reply<Stream>;

    fn listen_protocol(&self) -> SubstreamProtocol<Protocols, ()> {
        SubstreamProtocol::new(
            Protocols(vec![StreamProtocol::new(PERF), StreamProtocol::new(ECHO)]),
            (),
        )
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Protocols, Reply<Stream>, Infallible>> {
        match self.to_open.pop_front() {
            Some(OpenRequest { protocol, reply }) => {
                Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                    protocol: SubstreamProtocol::new(Protocols(vec![protocol]), reply),
                })
            }
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, request: OpenRequest) {
        self.to_open.push_back(request);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Protocols, Protocols, (), Reply<Stream>>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                ..
            }) => {
                let _ = self.inbound.unbounded_send((protocol, stream));
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, _),
                info: reply,
            }) => {
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: reply, error }) => {
                let _ = reply.send(Err(error.to_string()));
            }
            _ => {}
        }
    }
}

/// A list of protocols to negotiate; the output is the stream and the chosen protocol.
#[derive(Debug, Clone)]
struct Protocols(Vec<StreamProtocol>);

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = Vec<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone()
    }
}

impl InboundUpgrade<Stream> for Protocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

impl OutboundUpgrade<Stream> for Protocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}
