//! One probe: a DialRequest for one address with a nonce, the dial data if the
//! server asks (within our limit), its answer, and the dial-back that must carry
//! our nonce.
//!
//! [`interpret`] and [`conclude`] are the pure part: what a server's message means,
//! and what the probe proved once the answer and the dial-back (or its absence) are
//! known. [`probe`] moves the bytes, each step within a timeout.

use super::tracker::Evidence;
use crate::codec::{read_message, write_message, CodecError};
use crate::error::{ProbeError, Step};
use crate::proto::{
    message::Msg, DialDataResponse, DialRequest, DialStatus, Message, ResponseStatus,
};
use crate::MAX_DIAL_DATA_CHUNK;
use futures::channel::oneshot;
use futures::io::AsyncWriteExt;
use multiaddr::{Multiaddr, Protocol};
use std::future::Future;
use std::time::Duration;
use weft_upgrader::BoxedStream;

/// The client's limits and timeouts for one probe.
///
/// The defaults: up to 100 000 bytes of dial data (the top of the spec's range);
/// 15 s for each message we send; 60 s for the server's answer (it may dial for a
/// while); 5 s for a promised dial-back to show up after the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// The most dial data we send for one probe.
    pub max_dial_data: u64,
    /// The longest sending the request or the dial data may take.
    pub send_timeout: Duration,
    /// The longest the server's answer may take (it dials in the meantime).
    pub response_timeout: Duration,
    /// After an answer that says the nonce was delivered, how long our dial-back
    /// handler may still take to report it.
    pub dial_back_grace: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            max_dial_data: 100_000,
            send_timeout: Duration::from_secs(15),
            response_timeout: Duration::from_secs(60),
            dial_back_grace: Duration::from_secs(5),
        }
    }
}

impl ProbeConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most dial data we send.
    pub fn with_max_dial_data(mut self, bytes: u64) -> Self {
        self.max_dial_data = bytes;
        self
    }

    /// The timeouts: sending, the server's answer, the dial-back's grace.
    pub fn with_timeouts(mut self, send: Duration, response: Duration, grace: Duration) -> Self {
        self.send_timeout = send;
        self.response_timeout = response;
        self.dial_back_grace = grace;
        self
    }
}

/// What a server's message on the dial-request stream means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Send this much dial data, then wait for the answer.
    SendDialData(u64),
    /// The server dialed our address: with this status.
    Dialed(DialStatus),
}

/// What a server's `msg` means for a probe of one address. `dial_data_sent`: the
/// server already had its dial data (a second ask is a protocol error).
///
/// # Errors
///
/// [`ProbeError`]: the server rejected or refused the request, reported an internal
/// error, asked for too much data, or broke the protocol (an unknown status is
/// discarded, as the spec says).
pub fn interpret(
    msg: &Message,
    max_dial_data: u64,
    dial_data_sent: bool,
) -> Result<Reply, ProbeError> {
    let protocol = |reason: String| ProbeError::Protocol {
        step: Step::ReadResponse,
        reason,
    };
    match &msg.msg {
        Some(Msg::DialDataRequest(ask)) => {
            if dial_data_sent {
                return Err(protocol("a second DialDataRequest".into()));
            }
            if ask.addr_idx != 0 {
                return Err(protocol(format!(
                    "dial data asked for address {} of a request of one",
                    ask.addr_idx
                )));
            }
            if ask.num_bytes > max_dial_data {
                return Err(ProbeError::DialDataTooLarge {
                    asked: ask.num_bytes,
                    limit: max_dial_data,
                });
            }
            Ok(Reply::SendDialData(ask.num_bytes))
        }
        Some(Msg::DialResponse(r)) => match ResponseStatus::try_from(r.status) {
            Ok(ResponseStatus::Ok) => {
                if r.addr_idx != 0 {
                    return Err(protocol(format!(
                        "the server dialed address {} of a request of one",
                        r.addr_idx
                    )));
                }
                match DialStatus::try_from(r.dial_status) {
                    Ok(DialStatus::Unused) | Err(_) => {
                        Err(protocol(format!("unknown dial status {}", r.dial_status)))
                    }
                    Ok(status) => Ok(Reply::Dialed(status)),
                }
            }
            Ok(ResponseStatus::ERequestRejected) => Err(ProbeError::Rejected),
            Ok(ResponseStatus::EDialRefused) => Err(ProbeError::Refused),
            Ok(ResponseStatus::EInternalError) => Err(ProbeError::Internal),
            Err(_) => Err(protocol(format!("unknown response status {}", r.status))),
        },
        _ => Err(protocol(format!("unexpected {}", msg.kind()))),
    }
}

/// Whether `local` (our address on the connection a dial-back came on) is of the
/// same transport as `probed`: the same protocols in the same order, values and
/// `/p2p` and `/certhash` parts aside.
pub fn same_transport(probed: &Multiaddr, local: &Multiaddr) -> bool {
    let shape = |a: &Multiaddr| -> Vec<std::mem::Discriminant<Protocol<'static>>> {
        a.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_) | Protocol::Certhash(_)))
            .map(|p| std::mem::discriminant(&p.acquire()))
            .collect()
    };
    shape(probed) == shape(local)
}

/// What a probe of `probed` proved, from the server's `status` and the dial-back
/// our handler saw with our nonce (our address on its connection), if any.
///
/// A dial-back with our nonce proves the address reachable whatever the server
/// says (if it came over the address's transport); a server's OK without one is
/// discarded.
///
/// # Errors
///
/// [`ProbeError::NoDialBack`], [`ProbeError::WrongTransport`] or
/// [`ProbeError::DialBackFailed`]: nothing was learnt.
pub fn conclude(
    probed: &Multiaddr,
    status: DialStatus,
    dial_back: Option<&Multiaddr>,
) -> Result<Evidence, ProbeError> {
    if let Some(local) = dial_back {
        if !same_transport(probed, local) {
            return Err(ProbeError::WrongTransport {
                local: local.clone(),
            });
        }
        return Ok(Evidence::Reachable);
    }
    match status {
        DialStatus::Ok => Err(ProbeError::NoDialBack),
        DialStatus::EDialError => Ok(Evidence::Unreachable),
        DialStatus::EDialBackError | DialStatus::Unused => Err(ProbeError::DialBackFailed),
    }
}

async fn step<T>(
    step: Step,
    after: Duration,
    work: impl Future<Output = Result<T, CodecError>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(after, work).await {
        Ok(r) => r.map_err(|source| ProbeError::Codec { step, source }),
        Err(_) => Err(ProbeError::Timeout { step, after }),
    }
}

/// Runs one probe of `addr` on a fresh dial-request `stream`, with `nonce`.
/// `dial_back` yields our address on the connection that brought a dial-back with
/// this nonce (the host's dial-back handler completes it).
///
/// # Errors
///
/// [`ProbeError`]: the exchange failed or timed out, the server declined, broke the
/// protocol, or its answer proved nothing. The stream is reset on a protocol error
/// or an excessive dial data request, as the spec says.
pub async fn probe(
    mut stream: BoxedStream,
    addr: &Multiaddr,
    nonce: u64,
    mut dial_back: oneshot::Receiver<Multiaddr>,
    config: &ProbeConfig,
) -> Result<Evidence, ProbeError> {
    let request = Message::new(Msg::DialRequest(DialRequest {
        addrs: vec![addr.to_vec()],
        nonce,
    }));
    step(
        Step::SendRequest,
        config.send_timeout,
        write_message(&mut stream, &request),
    )
    .await?;
    let mut buf = Vec::new();
    let mut dial_data_sent = false;
    let status = loop {
        let msg: Message = step(
            Step::ReadResponse,
            config.response_timeout,
            read_message(&mut stream, &mut buf),
        )
        .await?;
        match interpret(&msg, config.max_dial_data, dial_data_sent) {
            Ok(Reply::SendDialData(bytes)) => {
                step(
                    Step::SendDialData,
                    config.send_timeout,
                    send_dial_data(&mut stream, bytes),
                )
                .await?;
                dial_data_sent = true;
            }
            Ok(Reply::Dialed(status)) => break status,
            Err(e) => {
                if matches!(
                    e,
                    ProbeError::Protocol { .. } | ProbeError::DialDataTooLarge { .. }
                ) {
                    stream.reset();
                }
                return Err(e);
            }
        }
    };
    let _ = stream.close().await;
    let seen = match dial_back.try_recv() {
        Ok(Some(local)) => Some(local),
        Ok(None) if status == DialStatus::Ok => {
            // The nonce was acknowledged before the answer was sent, but our
            // handler may not have reported it yet.
            match tokio::time::timeout(config.dial_back_grace, dial_back).await {
                Ok(Ok(local)) => Some(local),
                Ok(Err(_)) | Err(_) => None,
            }
        }
        Ok(None) | Err(_) => None,
    };
    conclude(addr, status, seen.as_ref())
}

/// Sends `bytes` of dial data in chunks of [`MAX_DIAL_DATA_CHUNK`] (the last one
/// whole: the spec lets it overshoot), one encoded message reused.
async fn send_dial_data(stream: &mut BoxedStream, bytes: u64) -> Result<(), CodecError> {
    let chunk = Message::new(Msg::DialDataResponse(DialDataResponse {
        data: vec![0; MAX_DIAL_DATA_CHUNK],
    }));
    let frame = crate::codec::encode_frame(&chunk)?;
    let count = bytes.div_ceil(MAX_DIAL_DATA_CHUNK as u64);
    for _ in 0..count {
        stream.write_all(&frame).await?;
    }
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DialDataRequest, DialResponse};

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn response(status: ResponseStatus, idx: u32, dial: i32) -> Message {
        Message::new(Msg::DialResponse(DialResponse {
            status: status as i32,
            addr_idx: idx,
            dial_status: dial,
        }))
    }

    #[test]
    fn server_messages_are_interpreted_and_bad_ones_rejected() {
        let ok = response(ResponseStatus::Ok, 0, DialStatus::Ok as i32);
        assert_eq!(
            interpret(&ok, 0, false).unwrap(),
            Reply::Dialed(DialStatus::Ok)
        );
        let err = response(ResponseStatus::Ok, 0, DialStatus::EDialError as i32);
        assert_eq!(
            interpret(&err, 0, false).unwrap(),
            Reply::Dialed(DialStatus::EDialError)
        );
        for (msg, want) in [
            (response(ResponseStatus::ERequestRejected, 0, 0), "rejected"),
            (response(ResponseStatus::EDialRefused, 0, 0), "refused"),
            (response(ResponseStatus::EInternalError, 0, 0), "internal"),
        ] {
            let e = interpret(&msg, 0, false).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        // Unknown statuses are discarded; so is an index past our one address.
        let mut odd = response(ResponseStatus::Ok, 0, DialStatus::Ok as i32);
        if let Some(Msg::DialResponse(r)) = &mut odd.msg {
            r.status = 150;
        }
        assert!(matches!(
            interpret(&odd, 0, false),
            Err(ProbeError::Protocol { .. })
        ));
        let unused = response(ResponseStatus::Ok, 0, 0);
        assert!(matches!(
            interpret(&unused, 0, false),
            Err(ProbeError::Protocol { .. })
        ));
        let unknown_dial = response(ResponseStatus::Ok, 0, 300);
        assert!(matches!(
            interpret(&unknown_dial, 0, false),
            Err(ProbeError::Protocol { .. })
        ));
        let idx = response(ResponseStatus::Ok, 1, DialStatus::Ok as i32);
        assert!(matches!(
            interpret(&idx, 0, false),
            Err(ProbeError::Protocol { .. })
        ));
        let empty = Message { msg: None };
        assert!(matches!(
            interpret(&empty, 0, false),
            Err(ProbeError::Protocol { .. })
        ));
    }

    #[test]
    fn dial_data_is_sent_only_within_our_limit_and_once() {
        let ask = |n| {
            Message::new(Msg::DialDataRequest(DialDataRequest {
                addr_idx: 0,
                num_bytes: n,
            }))
        };
        assert_eq!(
            interpret(&ask(30_000), 100_000, false).unwrap(),
            Reply::SendDialData(30_000)
        );
        assert!(matches!(
            interpret(&ask(100_001), 100_000, false),
            Err(ProbeError::DialDataTooLarge {
                asked: 100_001,
                limit: 100_000
            })
        ));
        assert!(matches!(
            interpret(&ask(10), 100_000, true),
            Err(ProbeError::Protocol { .. })
        ));
    }

    #[test]
    fn only_our_nonce_over_the_right_transport_proves_reachability() {
        let tcp = a("/ip4/8.8.8.8/tcp/4001");
        let local_tcp = a("/ip4/10.0.0.2/tcp/4001");
        let local_quic = a("/ip4/10.0.0.2/udp/4001/quic-v1");
        assert_eq!(
            conclude(&tcp, DialStatus::Ok, Some(&local_tcp)).unwrap(),
            Evidence::Reachable
        );
        assert!(matches!(
            conclude(&tcp, DialStatus::Ok, Some(&local_quic)),
            Err(ProbeError::WrongTransport { .. })
        ));
        // The server claims a dial-back that never came (or came with another nonce).
        assert!(matches!(
            conclude(&tcp, DialStatus::Ok, None),
            Err(ProbeError::NoDialBack)
        ));
        assert_eq!(
            conclude(&tcp, DialStatus::EDialError, None).unwrap(),
            Evidence::Unreachable
        );
        assert!(matches!(
            conclude(&tcp, DialStatus::EDialBackError, None),
            Err(ProbeError::DialBackFailed)
        ));
        assert!(same_transport(
            &a("/ip4/1.1.1.1/udp/1/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"),
            &a("/ip4/2.2.2.2/udp/9/quic-v1")
        ));
        assert!(!same_transport(
            &a("/ip4/1.1.1.1/tcp/1"),
            &a("/ip6/::1/tcp/1")
        ));
    }
}
