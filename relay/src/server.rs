//! The relay server: answers hop streams (RESERVE, CONNECT) within its
//! [`RelayConfig`], opens stop streams through the host ([`StopOpener`]) and splices
//! circuits within their limits.

use crate::codec::{read_message, write_message, CodecError};
use crate::config::RelayConfig;
use crate::error::{HopError, Step};
use crate::proto::{HopMessage, HopType, Limit, Peer, Reservation, Status, StopMessage, StopType};
use crate::splice::{splice_until, SpliceReport};
use crate::table::{CircuitId, CircuitSlot, ReservationTable};
use futures::channel::oneshot;
use futures::io::AsyncWriteExt;
use libp2p_identity::{Keypair, PeerId};
use multiaddr::{Multiaddr, Protocol};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, info};
use weft_upgrader::{BoxedStream, Budget, Priority};

/// What the relay needs from its host: a stop stream
/// (`/libp2p/circuit/relay/0.2.0/stop`, negotiated) to a peer over a connection
/// that is already open. A relay never dials the target.
#[async_trait::async_trait]
pub trait StopOpener: Send + Sync {
    /// Opens and negotiates a stop stream to `target`.
    async fn open_stop(&self, target: PeerId) -> std::io::Result<BoxedStream>;
}

/// Who sent a hop request, as the host saw the connection it came on.
#[derive(Debug, Clone)]
pub struct HopSource {
    /// The peer.
    pub peer: PeerId,
    /// The IP address of the connection, if it has one: reservations are counted
    /// per IP, and a full table shares its slots out by IP. Give an IPv6 address
    /// masked to the prefix one subscriber gets (weft-host: its /64), or one
    /// attacker counts as many.
    pub ip: Option<IpAddr>,
    /// Whether the connection is itself relayed: such requests are refused.
    pub relayed: bool,
    /// The relay's addresses to hand out with a reservation (its public listen
    /// addresses; each gets `/p2p/<relay>` appended if it lacks it).
    pub relay_addrs: Vec<Multiaddr>,
    /// What a circuit's copy buffers are reserved from (the host: the scope of the
    /// initiator's connection, so the peer that asks pays).
    pub budget: Budget,
}

/// What serving one hop stream did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopOutcome {
    /// A reservation was granted or renewed, until `expire` (UNIX seconds).
    Reserved {
        /// The peer.
        peer: PeerId,
        /// Its end.
        expire: u64,
        /// The peer whose reservation was taken to make room (a full table gives a
        /// newcomer the newest slot of the address holding the most), if any.
        evicted: Option<PeerId>,
    },
    /// A circuit was relayed and has ended.
    Relayed {
        /// The initiator.
        src: PeerId,
        /// The target.
        dst: PeerId,
        /// What it carried and how it ended.
        report: SpliceReport,
    },
}

/// A circuit relay v2 server: its reservations and circuits.
///
/// Share it (`Arc`) between the hop handler and the code that tells it when a peer
/// disconnected ([`Relay::peer_disconnected`]).
pub struct Relay {
    keypair: Keypair,
    config: RelayConfig,
    table: Arc<Mutex<ReservationTable>>,
    /// How to end each open circuit early (when the table evicts it).
    stops: Arc<Mutex<HashMap<CircuitId, oneshot::Sender<()>>>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("peer", &self.keypair.public().to_peer_id())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A circuit's slot in the table (and its stop signal), given back on drop.
struct SlotGuard {
    table: Arc<Mutex<ReservationTable>>,
    stops: Arc<Mutex<HashMap<CircuitId, oneshot::Sender<()>>>>,
    slot: Option<CircuitSlot>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            lock(&self.stops).remove(&slot.id);
            lock(&self.table).close_circuit(slot);
        }
    }
}

fn lock<T>(table: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every table operation completes its counters before anything can panic.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn status_message(status: Status, limit: Option<Limit>) -> HopMessage {
    HopMessage {
        r#type: Some(HopType::Status as i32),
        status: Some(status as i32),
        limit,
        ..Default::default()
    }
}

impl Relay {
    /// A relay signing vouchers with `keypair` (the host's identity), within
    /// `config`.
    pub fn new(keypair: Keypair, config: RelayConfig) -> Self {
        Relay {
            table: Arc::new(Mutex::new(ReservationTable::new(&config))),
            stops: Arc::default(),
            keypair,
            config,
        }
    }

    /// The relay's limits.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Reservations held now.
    pub fn reservations(&self) -> usize {
        let mut table = lock(&self.table);
        table.expire(Instant::now());
        table.reservations()
    }

    /// Circuits open now.
    pub fn circuits(&self) -> usize {
        lock(&self.table).circuits()
    }

    /// Whether `peer` holds a reservation now.
    pub fn has_reservation(&self, peer: &PeerId) -> bool {
        lock(&self.table).has_reservation(peer, Instant::now())
    }

    /// Forgets `peer`'s reservation: it has no connection to the relay any more
    /// (the spec: a reservation is valid only while the peer stays connected).
    pub fn peer_disconnected(&self, peer: &PeerId) {
        if lock(&self.table).remove(peer) {
            debug!(%peer, "reservation dropped: the peer disconnected");
        }
    }

    async fn step<T>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, CodecError>>,
    ) -> Result<T, HopError> {
        let after = self.config.handshake_timeout;
        match tokio::time::timeout(after, work).await {
            Ok(r) => r.map_err(|source| HopError::Codec { step, source }),
            Err(_) => Err(HopError::Timeout { step, after }),
        }
    }

    /// Answers `status` on the hop stream and returns the refusal.
    async fn refuse(
        &self,
        stream: &mut BoxedStream,
        status: Status,
        reason: String,
    ) -> Result<HopOutcome, HopError> {
        debug!(%status, %reason, "hop request refused");
        self.step(
            Step::HopAnswer,
            write_message(stream, &status_message(status, None)),
        )
        .await?;
        let _ = stream.close().await;
        Err(HopError::Refused { status, reason })
    }

    /// Serves one inbound hop stream from `source` to its end: a reservation, or a
    /// circuit relayed until it closes or hits its limits.
    ///
    /// # Errors
    ///
    /// [`HopError`]: the request was refused (the client was told), an exchange
    /// failed or timed out, or the circuit failed while relaying.
    pub async fn serve_hop(
        &self,
        mut stream: BoxedStream,
        source: HopSource,
        opener: &dyn StopOpener,
    ) -> Result<HopOutcome, HopError> {
        let request: HopMessage = match self.step(Step::HopRequest, read_message(&mut stream)).await
        {
            Ok(m) => m,
            Err(HopError::Codec {
                source: CodecError::Decode { source: e, .. },
                ..
            }) => {
                return self
                    .refuse(&mut stream, Status::MalformedMessage, e.to_string())
                    .await
            }
            Err(e) => return Err(e),
        };
        match request.r#type.and_then(|t| HopType::try_from(t).ok()) {
            Some(HopType::Reserve) => self.reserve(stream, source).await,
            Some(HopType::Connect) => self.connect(stream, source, request, opener).await,
            Some(HopType::Status) | None => {
                self.refuse(
                    &mut stream,
                    Status::UnexpectedMessage,
                    "not a RESERVE or a CONNECT".into(),
                )
                .await
            }
        }
    }

    async fn reserve(
        &self,
        mut stream: BoxedStream,
        source: HopSource,
    ) -> Result<HopOutcome, HopError> {
        let peer = source.peer;
        if source.relayed {
            return self
                .refuse(
                    &mut stream,
                    Status::PermissionDenied,
                    "a reservation over a relayed connection".into(),
                )
                .await;
        }
        let now = Instant::now();
        let granted = {
            let mut table = lock(&self.table);
            let renewal = table.has_reservation(&peer, now);
            table.reserve(peer, source.ip, now).map(|g| (g, renewal))
        };
        let (granted, renewal) = match granted {
            Ok(g) => g,
            Err(refusal) => {
                return self
                    .refuse(&mut stream, refusal.status(), refusal.to_string())
                    .await
            }
        };
        if let Some(evicted) = granted.evicted {
            info!(%peer, %evicted, "reservation taken from a peer of the address holding the most");
        }
        let expire = (unix_now() + self.config.reservation_duration).as_secs();
        let relay_id = self.keypair.public().to_peer_id();
        let voucher = match crate::voucher::sign(&self.keypair, peer, expire) {
            Ok(v) => Some(v),
            Err(e) => {
                debug!(error = %e, "no voucher: signing failed");
                None
            }
        };
        let addrs = source
            .relay_addrs
            .into_iter()
            .map(|a| match a.iter().last() {
                Some(Protocol::P2p(p)) if p == relay_id => a,
                _ => a.with(Protocol::P2p(relay_id)),
            })
            .map(|a| a.to_vec())
            .collect();
        let answer = HopMessage {
            reservation: Some(Reservation {
                expire: Some(expire),
                addrs,
                voucher,
            }),
            ..status_message(Status::Ok, self.config.limit())
        };
        let written = self
            .step(Step::HopAnswer, write_message(&mut stream, &answer))
            .await;
        if let Err(e) = written {
            // The peer did not hear of a new one: the slot is not held for it.
            if !renewal {
                lock(&self.table).remove(&peer);
            }
            return Err(e);
        }
        let _ = stream.close().await;
        info!(%peer, expire, renewal, "reservation granted");
        Ok(HopOutcome::Reserved {
            peer,
            expire,
            evicted: granted.evicted,
        })
    }

    async fn connect(
        &self,
        mut stream: BoxedStream,
        source: HopSource,
        request: HopMessage,
        opener: &dyn StopOpener,
    ) -> Result<HopOutcome, HopError> {
        let src = source.peer;
        if source.relayed {
            return self
                .refuse(
                    &mut stream,
                    Status::PermissionDenied,
                    "a CONNECT over a relayed connection".into(),
                )
                .await;
        }
        let Some(dst) = request
            .peer
            .and_then(|p| p.id)
            .and_then(|id| PeerId::from_bytes(&id).ok())
        else {
            return self
                .refuse(
                    &mut stream,
                    Status::MalformedMessage,
                    "a CONNECT without a valid peer id".into(),
                )
                .await;
        };
        let opened = lock(&self.table).open_circuit_from(src, source.ip, dst, Instant::now());
        let (_slot, stopped) = match opened {
            Ok(slot) => {
                let (stop, stopped) = oneshot::channel();
                let mut stops = lock(&self.stops);
                if let Some(evicted) = slot.evicted {
                    debug!(%src, %dst, "a circuit of the address holding the most ends to make room");
                    if let Some(stop) = stops.remove(&evicted) {
                        let _ = stop.send(());
                    }
                }
                stops.insert(slot.id, stop);
                drop(stops);
                let guard = SlotGuard {
                    table: self.table.clone(),
                    stops: self.stops.clone(),
                    slot: Some(slot),
                };
                (guard, stopped)
            }
            Err(refusal) => {
                return self
                    .refuse(&mut stream, refusal.status(), refusal.to_string())
                    .await
            }
        };
        let buffer = self.config.buffer_size;
        let _buffers = match source
            .budget
            .reserve(buffer.saturating_mul(2), Priority::MEDIUM)
        {
            Ok(r) => r,
            Err(e) => {
                return self
                    .refuse(&mut stream, Status::ResourceLimitExceeded, e.to_string())
                    .await
            }
        };
        let after = self.config.handshake_timeout;
        let mut stop = match tokio::time::timeout(after, opener.open_stop(dst)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return self
                    .refuse(
                        &mut stream,
                        Status::ConnectionFailed,
                        format!("{}: {e}", Step::OpenStop),
                    )
                    .await
            }
            Err(_) => {
                return self
                    .refuse(
                        &mut stream,
                        Status::ConnectionFailed,
                        format!("{}: timed out after {after:?}", Step::OpenStop),
                    )
                    .await
            }
        };
        let limit = self.config.limit();
        let stop_request = StopMessage {
            r#type: Some(StopType::Connect as i32),
            peer: Some(Peer {
                id: Some(src.to_bytes()),
                addrs: Vec::new(),
            }),
            limit,
            status: None,
        };
        let answered: Result<StopMessage, HopError> = self
            .step(Step::StopExchange, async {
                write_message(&mut stop, &stop_request).await?;
                read_message(&mut stop).await
            })
            .await;
        let accepted = match answered {
            Ok(answer) if answer.r#type == Some(StopType::Status as i32) => {
                answer.status == Some(Status::Ok as i32)
            }
            Ok(_) => false,
            Err(e) => {
                debug!(%src, %dst, error = %e, "the stop exchange failed");
                false
            }
        };
        if !accepted {
            stop.reset();
            return self
                .refuse(
                    &mut stream,
                    Status::ConnectionFailed,
                    "the target did not accept the circuit".into(),
                )
                .await;
        }
        self.step(
            Step::HopAnswer,
            write_message(&mut stream, &status_message(Status::Ok, limit)),
        )
        .await?;
        info!(%src, %dst, "relaying a circuit");
        let report = splice_until(
            &mut *stream,
            &mut *stop,
            buffer,
            self.config.max_circuit_bytes,
            self.config.max_circuit_duration,
            async {
                // A dropped sender (never: the guard outlives the splice) is no stop.
                if stopped.await.is_err() {
                    std::future::pending::<()>().await;
                }
            },
        )
        .await
        .map_err(HopError::Splice)?;
        info!(%src, %dst, end = ?report.end, a_to_b = report.a_to_b, b_to_a = report.b_to_a, "circuit ended");
        Ok(HopOutcome::Relayed { src, dst, report })
    }
}
