//! Circuit relay v2 in the host (feature `relay`), on `weft-relay`.
//!
//! - The client (on by default with the feature, [`HostBuilder::relay_client`]): a
//!   transport that dials `/<relay addr>/p2p/<relay>/p2p-circuit/p2p/<target>` (a
//!   hop stream over a connection to the relay, dialed or reused, becomes the raw
//!   stream the host upgrades like a TCP socket) and listens on
//!   `/<relay addr>/p2p/<relay>/p2p-circuit` (a reservation, renewed in time, and
//!   the relay's stop streams accepted as inbound connections); and the stop
//!   handler that hands those streams to the listener.
//! - The server (opt-in, [`HostBuilder::relay_server`]): the hop handler, serving
//!   reservations and circuits within a [`RelayConfig`], each circuit's copy buffers
//!   charged to the initiator's connection scope.
//! - Trimming: a client protects its relay's connection in the connection policy
//!   while its reservation lives, and a server tags the peers it holds reservations
//!   for ([`RESERVATION_TAG`]).
//!
//! A relayed connection's addresses contain `/p2p-circuit`:
//! [`ConnectionInfo::is_relayed`](crate::ConnectionInfo::is_relayed) tells it.

mod server;
mod transport;

use crate::builder::HostBuilder;
use crate::host::Inner;
use crate::transport::Transport;
use multiaddr::{Multiaddr, Protocol};
use std::sync::Arc;
use weft_upgrader::MuxedStream;

pub use weft_relay::{Limit, RelayConfig, ReservationInfo, Status, HOP_PROTOCOL, STOP_PROTOCOL};

/// The connection manager tag of reservations: a client protects its relay under it
/// while it holds a reservation there (trimming never closes that connection, so
/// the reservation and the relayed address live on), and a relay server tags the
/// peers it holds reservations for with [`RESERVATION_TAG_VALUE`] (trimming closes
/// them after untagged peers), as go-libp2p does.
pub const RESERVATION_TAG: &str = "relay-reservation";

/// The tag value a relay server gives a peer holding a reservation.
pub const RESERVATION_TAG_VALUE: i64 = 10;

/// What the builder was asked for.
#[derive(Debug, Clone)]
pub(crate) struct RelaySetup {
    client: bool,
    server: Option<RelayConfig>,
}

impl Default for RelaySetup {
    fn default() -> Self {
        RelaySetup {
            client: true,
            server: None,
        }
    }
}

/// The relay parts made before the host exists, installed once it does.
pub(crate) struct PreparedRelay {
    client: Option<Arc<transport::ClientShared>>,
    server: Option<RelayConfig>,
}

impl RelaySetup {
    /// Adds the relay transport to `transports` (the client wants it).
    pub(crate) fn prepare(self, transports: &mut Vec<Arc<dyn Transport>>) -> PreparedRelay {
        let client = self.client.then(|| {
            let shared = Arc::new(transport::ClientShared::default());
            transports.push(Arc::new(transport::RelayTransport::new(shared.clone())));
            shared
        });
        PreparedRelay {
            client,
            server: self.server,
        }
    }
}

impl PreparedRelay {
    /// Registers the handlers on the built host.
    pub(crate) fn install(self, inner: &Arc<Inner>) {
        if let Some(shared) = self.client {
            transport::install(inner, shared);
        }
        if let Some(config) = self.server {
            server::install(inner, config);
        }
    }
}

impl HostBuilder {
    /// Serves circuit relay v2 (`/libp2p/circuit/relay/0.2.0/hop`) within `config`:
    /// reservations for peers connected to us, and circuits to them (feature
    /// `relay`; off by default).
    pub fn relay_server(mut self, config: RelayConfig) -> Self {
        self.relay.server = Some(config);
        self
    }

    /// Whether the host dials and listens on `/p2p-circuit` addresses and accepts
    /// relayed connections (feature `relay`; on by default).
    pub fn relay_client(mut self, on: bool) -> Self {
        self.relay.client = on;
        self
    }
}

/// Whether an address goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

impl MuxedStream for crate::Stream {
    fn reset(&mut self) {
        crate::Stream::reset(self);
    }
}
