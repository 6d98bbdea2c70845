//! One dial request, served: read, admit, select, ask for dial data, dial back,
//! answer.

use super::config::ServerConfig;
use super::limiter::{RateLimiter, Rejection, RequestSlot};
use super::select::{select, DialDataCounter};
use crate::codec::{read_message, write_message, CodecError, MAX_MESSAGE_LEN};
use crate::error::{ServerError, Step};
use crate::proto::{
    message::Msg, DialDataRequest, DialResponse, DialStatus, Message, ResponseStatus,
};
use futures::io::AsyncWriteExt;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::debug;
use weft_upgrader::{BoxedStream, Budget, Priority};

/// What the server needs from its host: which addresses it can dial, and the
/// dial-back itself.
///
/// The dial-back must go out on a new connection of its own, never one the client
/// already has to us, and from a fresh port (not our listening one, so a NAT that
/// maps the client's outbound connections cannot let it in by accident: an
/// accidental hole punch would report a private address reachable). go-libp2p
/// uses a second host with its own identity for this; the client checks only the
/// nonce, never the peer id.
#[async_trait::async_trait]
pub trait DialBacker: Send + Sync {
    /// Whether the server can and will dial `addr` (a transport for it, a public
    /// address, an IP family we have).
    fn can_dial(&self, addr: &Multiaddr) -> bool;

    /// Dials `addr`, opens `/libp2p/autonat/2/dial-back` and sends `nonce` (with
    /// [`crate::dial_back::send_nonce`]), within `timeout`.
    async fn dial_back(&self, addr: &Multiaddr, nonce: u64, timeout: Duration) -> DialBackResult;
}

/// How a dial-back went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialBackResult {
    /// Connected, and the client acknowledged the nonce.
    Delivered,
    /// No connection could be made.
    DialFailed(String),
    /// Connected, but the nonce exchange failed.
    DialBackFailed(String),
}

impl DialBackResult {
    fn status(&self) -> DialStatus {
        match self {
            DialBackResult::Delivered => DialStatus::Ok,
            DialBackResult::DialFailed(_) => DialStatus::EDialError,
            DialBackResult::DialBackFailed(_) => DialStatus::EDialBackError,
        }
    }
}

/// Who sent a dial request, as the host saw the connection it came on.
#[derive(Debug, Clone)]
pub struct RequestSource {
    /// The peer.
    pub peer: PeerId,
    /// The IP address the connection comes from (`None`: not an IP connection).
    pub observed_ip: Option<IpAddr>,
    /// Whether the connection is relayed: such requests are rejected.
    pub relayed: bool,
    /// What the request's read buffer is reserved from (the host: the scope of the
    /// client's connection).
    pub budget: Budget,
}

/// What serving one request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeOutcome {
    /// Rejected (the client was answered `E_REQUEST_REJECTED`).
    Rejected(Rejection),
    /// No address we can dial (answered `E_DIAL_REFUSED`).
    Refused,
    /// An address was dialed.
    Dialed {
        /// The address.
        addr: Multiaddr,
        /// The dial data received first (0 when the IP was the client's).
        dial_data: u64,
        /// How the dial-back went.
        result: DialBackResult,
    },
}

/// An AutoNAT v2 server: its limits and the requests in progress.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    limiter: Arc<Mutex<RateLimiter>>,
}

/// A request's slot in the limiter, given back on drop.
struct SlotGuard {
    limiter: Arc<Mutex<RateLimiter>>,
    slot: Option<RequestSlot>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            lock(&self.limiter).finish(slot);
        }
    }
}

fn lock(limiter: &Mutex<RateLimiter>) -> MutexGuard<'_, RateLimiter> {
    // Every limiter operation completes its counters before anything can panic.
    limiter.lock().unwrap_or_else(|p| p.into_inner())
}

fn response(status: ResponseStatus, addr_idx: u32, dial_status: DialStatus) -> Message {
    Message::new(Msg::DialResponse(DialResponse {
        status: status as i32,
        addr_idx,
        dial_status: dial_status as i32,
    }))
}

impl Server {
    /// A server within `config`.
    pub fn new(config: ServerConfig) -> Self {
        Server {
            limiter: Arc::new(Mutex::new(RateLimiter::new(&config))),
            config,
        }
    }

    /// Its limits.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Requests in progress now.
    pub fn in_progress(&self) -> usize {
        lock(&self.limiter).in_progress()
    }

    async fn step<T>(
        step: Step,
        after: Duration,
        work: impl Future<Output = Result<T, CodecError>>,
    ) -> Result<T, ServerError> {
        match tokio::time::timeout(after, work).await {
            Ok(r) => r.map_err(|source| ServerError::Codec { step, source }),
            Err(_) => Err(ServerError::Timeout { step, after }),
        }
    }

    async fn answer(&self, stream: &mut BoxedStream, msg: Message) -> Result<(), ServerError> {
        Self::step(
            Step::Answer,
            self.config.message_timeout,
            write_message(stream, &msg),
        )
        .await?;
        let _ = stream.close().await;
        Ok(())
    }

    async fn reject(
        &self,
        stream: &mut BoxedStream,
        why: Rejection,
    ) -> Result<ServeOutcome, ServerError> {
        debug!(reason = %why, "dial request rejected");
        let msg = response(ResponseStatus::ERequestRejected, 0, DialStatus::Unused);
        self.answer(stream, msg).await?;
        Ok(ServeOutcome::Rejected(why))
    }

    fn protocol_error(stream: &mut BoxedStream, step: Step, reason: String) -> ServerError {
        stream.reset();
        ServerError::Protocol { step, reason }
    }

    /// Serves one inbound dial-request stream from `source` to its end.
    ///
    /// # Errors
    ///
    /// [`ServerError`]: a message could not be read or written, a step timed out, or
    /// the client broke the protocol (the stream is then reset). A rejection or a
    /// refusal is an [`Ok`] outcome: the client was told.
    pub async fn serve(
        &self,
        mut stream: BoxedStream,
        source: RequestSource,
        dialer: &dyn DialBacker,
    ) -> Result<ServeOutcome, ServerError> {
        // The one read buffer of this request, reserved before it exists.
        let _buffer = match source.budget.reserve(MAX_MESSAGE_LEN, Priority::MEDIUM) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .reject(&mut stream, Rejection::Resources(e.to_string()))
                    .await
            }
        };
        let mut buf = Vec::with_capacity(MAX_MESSAGE_LEN);
        let timeout = self.config.message_timeout;
        let first: Message = Self::step(
            Step::ReadRequest,
            timeout,
            read_message(&mut stream, &mut buf),
        )
        .await?;
        let request = match first.msg {
            Some(Msg::DialRequest(r)) => r,
            _ => {
                let reason = format!("expected a DialRequest, got {}", first.kind());
                return Err(Self::protocol_error(&mut stream, Step::ReadRequest, reason));
            }
        };
        if source.relayed {
            return self.reject(&mut stream, Rejection::Relayed).await;
        }
        let slot = lock(&self.limiter).accept(source.peer, Instant::now());
        let _slot = match slot {
            Ok(slot) => SlotGuard {
                limiter: self.limiter.clone(),
                slot: Some(slot),
            },
            Err(why) => return self.reject(&mut stream, why).await,
        };
        let Some(selected) = select(&request.addrs, source.observed_ip, |a| dialer.can_dial(a))
        else {
            debug!(peer = %source.peer, addrs = request.addrs.len(), "no address to dial");
            let msg = response(ResponseStatus::EDialRefused, 0, DialStatus::Unused);
            self.answer(&mut stream, msg).await?;
            return Ok(ServeOutcome::Refused);
        };
        // The index fits: a message within MAX_MESSAGE_LEN has fewer addresses.
        let index = u32::try_from(selected.index).unwrap_or(u32::MAX);
        let mut dial_data = 0;
        if selected.needs_dial_data {
            let admitted = lock(&self.limiter).accept_dial_data(Instant::now());
            if let Err(why) = admitted {
                return self.reject(&mut stream, why).await;
            }
            let asked = self.config.draw_dial_data();
            let ask = Message::new(Msg::DialDataRequest(DialDataRequest {
                addr_idx: index,
                num_bytes: asked,
            }));
            Self::step(Step::Answer, timeout, write_message(&mut stream, &ask)).await?;
            dial_data = self.read_dial_data(&mut stream, &mut buf, asked).await?;
        }
        let result = dialer
            .dial_back(&selected.addr, request.nonce, self.config.dial_back_timeout)
            .await;
        debug!(peer = %source.peer, addr = %selected.addr, ?result, "dialed back");
        let msg = response(ResponseStatus::Ok, index, result.status());
        self.answer(&mut stream, msg).await?;
        Ok(ServeOutcome::Dialed {
            addr: selected.addr,
            dial_data,
            result,
        })
    }

    /// Reads DialDataResponse messages until `asked` bytes arrived, all within the
    /// dial data timeout and each within the message timeout.
    async fn read_dial_data(
        &self,
        stream: &mut BoxedStream,
        buf: &mut Vec<u8>,
        asked: u64,
    ) -> Result<u64, ServerError> {
        let mut counter = DialDataCounter::new(asked);
        let all = self.config.dial_data_timeout;
        let deadline = tokio::time::Instant::now() + all;
        while !counter.is_complete() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let after = left.min(self.config.message_timeout);
            let msg: Message = match tokio::time::timeout(after, read_message(stream, buf)).await {
                Ok(r) => r.map_err(|source| ServerError::Codec {
                    step: Step::ReadDialData,
                    source,
                })?,
                Err(_) => {
                    return Err(ServerError::Timeout {
                        step: Step::ReadDialData,
                        after: if left <= self.config.message_timeout {
                            all
                        } else {
                            after
                        },
                    })
                }
            };
            let chunk = match msg.msg {
                Some(Msg::DialDataResponse(d)) => d.data.len(),
                _ => {
                    let reason = format!("expected a DialDataResponse, got {}", msg.kind());
                    return Err(Self::protocol_error(stream, Step::ReadDialData, reason));
                }
            };
            if let Err(e) = counter.on_chunk(chunk) {
                return Err(Self::protocol_error(
                    stream,
                    Step::ReadDialData,
                    e.to_string(),
                ));
            }
        }
        Ok(counter.received())
    }
}
