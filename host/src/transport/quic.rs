//! QUIC (`/ip4|ip6/../udp/../quic-v1`) on `weft-transport-quic`: a transport that
//! yields secure, multiplexed connections directly.
//!
//! The handshake proves the peer a dial expects (inside TLS, before any stream). Its
//! receive window starts at [`weft_transport_quic::MIN_WINDOW`] unreserved; once the
//! connection has joined its peer's resource scope, it reserves its starting window
//! there (smaller, down to the minimum, when the peer's budget is short; never a
//! refusal) and grows as the application reads
//! ([`weft_upgrader::MuxedConnection::adopt_budget`]). Inbound handshakes run
//! concurrently, at most `max_pending_inbound` per listener (more are refused), and
//! the host admits the connection after its handshake. Once half of those slots are
//! taken, a peer that has not proven its address gets a stateless Retry first
//! (`handshake_admission`): a flood of Initials from ports that never answer (spoofed,
//! or abandoned) can hold at most half the slots, and an honest peer, which answers
//! the Retry, still gets in, one round trip later. Listening sockets carry our dials
//! too (port reuse).

use super::{Listener, Transport, TransportDialOpts, TransportError, TransportOutput, Transported};
use libp2p_identity::Keypair;
use multiaddr::Multiaddr;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use weft_transport_quic::{
    deferred_budget, multiaddr_to_socket, socket_to_multiaddr, Config, Established, QuicEndpoints,
    QuicError,
};
use weft_upgrader::Role;

/// What the listener does with a peer that starts a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandshakeAdmission {
    /// Run the handshake (it takes one of the listener's slots).
    Accept,
    /// Answer with a stateless Retry: the peer must prove its address first.
    Retry,
    /// CONNECTION_REFUSED: every slot is taken.
    Refuse,
}

/// The rule for a peer that starts a handshake while `in_progress` of `limit` slots
/// are taken: below half, everyone is served; from half on, a peer that has not
/// proven its address gets a Retry (which costs us nothing), and one that has
/// (`validated`: it answered a Retry) is served while a slot is free, refused when
/// none is.
fn handshake_admission(in_progress: usize, limit: usize, validated: bool) -> HandshakeAdmission {
    if !validated && in_progress >= limit.div_ceil(2) {
        HandshakeAdmission::Retry
    } else if in_progress >= limit {
        HandshakeAdmission::Refuse
    } else {
        HandshakeAdmission::Accept
    }
}

/// The QUIC transport of one identity.
#[derive(Debug, Clone)]
pub struct QuicTransport {
    endpoints: QuicEndpoints,
}

impl QuicTransport {
    /// QUIC for `keypair` with the default [`Config`].
    ///
    /// # Errors
    ///
    /// When the TLS certificate or configuration cannot be built.
    pub fn new(keypair: &Keypair) -> Result<Self, QuicError> {
        Self::with_config(keypair, Config::default())
    }

    /// QUIC for `keypair` with `config`.
    ///
    /// # Errors
    ///
    /// When the TLS certificate or configuration cannot be built.
    pub fn with_config(keypair: &Keypair, config: Config) -> Result<Self, QuicError> {
        Ok(QuicTransport {
            endpoints: QuicEndpoints::new(keypair, config)?,
        })
    }
}

/// A transported connection from an established QUIC connection.
fn transported(established: Established) -> Transported {
    Transported {
        output: TransportOutput::Connection(Box::new(established.connection)),
        local_addr: socket_to_multiaddr(established.local_addr),
        remote_addr: socket_to_multiaddr(established.remote_addr),
    }
}

#[async_trait::async_trait]
impl Transport for QuicTransport {
    fn name(&self) -> &str {
        "quic"
    }

    fn can_dial(&self, addr: &Multiaddr) -> bool {
        multiaddr_to_socket(addr).is_some_and(|sa| !sa.ip().is_unspecified() && sa.port() != 0)
    }

    fn can_listen(&self, addr: &Multiaddr) -> bool {
        multiaddr_to_socket(addr).is_some()
    }

    /// Dials as the QUIC client. A forced responder role (hole punching) is not
    /// supported yet: QUIC's roles follow who sends the first packet. A dial that
    /// knows the peer resumes a session of that peer id if one is kept; with
    /// `early_data` it returns before the listener answered when the session allows
    /// 0-RTT (see [`QuicEndpoints::dial_with`]).
    async fn dial(
        &self,
        addr: &Multiaddr,
        opts: &TransportDialOpts,
    ) -> Result<Transported, TransportError> {
        let remote = multiaddr_to_socket(addr)
            .filter(|_| opts.role != Some(Role::Responder))
            .ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        let established = self
            .endpoints
            .dial_with(remote, opts.peer, opts.early_data, deferred_budget())
            .await
            .map_err(|e| TransportError::Io(e.into()))?;
        Ok(transported(established))
    }

    fn punch(&self, addr: &Multiaddr, payload: &[u8]) -> Result<(), TransportError> {
        let remote =
            multiaddr_to_socket(addr).ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        self.endpoints
            .punch(remote, payload)
            .map_err(|e| TransportError::Io(e.into()))
    }

    async fn listen(&self, addr: &Multiaddr) -> Result<Box<dyn Listener>, TransportError> {
        let socket =
            multiaddr_to_socket(addr).ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        let listener = self
            .endpoints
            .listen(socket)
            .map_err(|e| TransportError::Io(e.into()))?;
        let local = socket_to_multiaddr(listener.local_addr());
        let limit = self.endpoints.config().max_pending_inbound.max(1);
        let pending = Arc::new(Semaphore::new(limit));
        let (ready, accepted) = mpsc::channel(16);
        let accepting = tokio::spawn(async move {
            loop {
                let inbound = match listener.accept().await {
                    Ok(inbound) => inbound,
                    Err(e) => {
                        let _ = ready.send(Err(TransportError::Io(e.into()))).await;
                        return;
                    }
                };
                let in_progress = limit - pending.available_permits();
                match handshake_admission(in_progress, limit, inbound.remote_address_validated()) {
                    HandshakeAdmission::Accept => {}
                    HandshakeAdmission::Retry => {
                        tracing::trace!(remote = %inbound.remote_addr(), in_progress, "QUIC handshakes under load; Retry first");
                        inbound.retry();
                        continue;
                    }
                    HandshakeAdmission::Refuse => {
                        tracing::debug!(remote = %inbound.remote_addr(), "too many QUIC handshakes in progress; refused");
                        inbound.refuse();
                        continue;
                    }
                }
                let Ok(permit) = pending.clone().try_acquire_owned() else {
                    inbound.refuse();
                    continue;
                };
                let ready = ready.clone();
                tokio::spawn(async move {
                    let remote = inbound.remote_addr();
                    match inbound.handshake(deferred_budget()).await {
                        Ok(established) => {
                            drop(permit);
                            let _ = ready.send(Ok(transported(established))).await;
                        }
                        Err(error) => {
                            tracing::debug!(%remote, %error, "inbound QUIC handshake failed");
                        }
                    }
                });
            }
        });
        Ok(Box::new(QuicListenerWrap {
            local,
            accepted,
            accepting,
        }))
    }
}

/// A listening QUIC socket: handshakes finish in their own tasks and queue here.
struct QuicListenerWrap {
    local: Multiaddr,
    accepted: mpsc::Receiver<Result<Transported, TransportError>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for QuicListenerWrap {
    fn drop(&mut self) {
        // Stops accepting; connections made stay up.
        self.accepting.abort();
    }
}

#[async_trait::async_trait]
impl Listener for QuicListenerWrap {
    fn local_addrs(&self) -> Vec<Multiaddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> Result<Transported, TransportError> {
        self.accepted
            .recv()
            .await
            .unwrap_or(Err(TransportError::Closed))
    }
}

#[cfg(test)]
mod tests {
    use super::{handshake_admission, HandshakeAdmission::*};

    #[test]
    fn unproven_peers_get_a_retry_once_half_the_slots_are_taken() {
        assert_eq!(handshake_admission(0, 256, false), Accept);
        assert_eq!(handshake_admission(127, 256, false), Accept);
        assert_eq!(handshake_admission(128, 256, false), Retry);
        assert_eq!(handshake_admission(128, 256, true), Accept);
        assert_eq!(handshake_admission(255, 256, true), Accept);
        assert_eq!(handshake_admission(256, 256, true), Refuse);
        assert_eq!(handshake_admission(256, 256, false), Retry);
        // A single slot: served while free.
        assert_eq!(handshake_admission(0, 1, false), Accept);
        assert_eq!(handshake_admission(1, 1, false), Retry);
        assert_eq!(handshake_admission(1, 1, true), Refuse);
    }
}
