//! A minimal `/echo/1.0.0` behaviour: it only negotiates streams and hands them to the
//! application (inbound ones to serve, outbound ones on request), which does the I/O.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, StreamUpgradeError, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};

/// The echo protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/echo/1.0.0");

/// What the echo behaviour reports to the application.
#[derive(Debug)]
pub enum Event {
    /// The remote opened an echo stream: the application serves it.
    Inbound { peer: PeerId, stream: Stream },
    /// An echo stream requested with [`Behaviour::open_stream`] is ready.
    Outbound { peer: PeerId, stream: Stream },
    /// An echo stream requested with [`Behaviour::open_stream`] could not be opened.
    OutboundFailed { peer: PeerId, error: String },
}

/// The echo behaviour.
#[derive(Default)]
pub struct Behaviour {
    pending: VecDeque<ToSwarm<Event, OpenStream>>,
}

impl Behaviour {
    /// Asks a connection to `peer` to open an echo stream; the result comes back as
    /// [`Event::Outbound`] or [`Event::OutboundFailed`].
    pub fn open_stream(&mut self, peer: PeerId) {
        self.pending.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::Any,
            event: OpenStream,
        });
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        let event = match event {
            HandlerEvent::Inbound(stream) => Event::Inbound { peer, stream },
            HandlerEvent::Outbound(stream) => Event::Outbound { peer, stream },
            HandlerEvent::OutboundFailed(error) => Event::OutboundFailed { peer, error },
        };
        self.pending.push_back(ToSwarm::GenerateEvent(event));
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

/// The command a [`Handler`] receives: open one outbound echo stream.
#[derive(Debug)]
pub struct OpenStream;

/// What a [`Handler`] reports to the [`Behaviour`].
#[derive(Debug)]
pub enum HandlerEvent {
    /// A negotiated inbound echo stream.
    Inbound(Stream),
    /// A negotiated outbound echo stream.
    Outbound(Stream),
    /// Opening an outbound echo stream failed.
    OutboundFailed(String),
}

/// Per-connection echo handler.
#[derive(Default)]
pub struct Handler {
    streams_to_open: usize,
    events: VecDeque<HandlerEvent>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = OpenStream;
    type ToBehaviour = HandlerEvent;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
        }
        if self.streams_to_open > 0 {
            self.streams_to_open -= 1;
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ()),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, OpenStream: OpenStream) {
        self.streams_to_open += 1;
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => self.events.push_back(HandlerEvent::Inbound(stream)),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                ..
            }) => self.events.push_back(HandlerEvent::Outbound(stream)),
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                let error: StreamUpgradeError<Infallible> = error;
                self.events
                    .push_back(HandlerEvent::OutboundFailed(error.to_string()));
            }
            _ => {}
        }
    }
}
