//! Simultaneous open (`/libp2p/simultaneous-connect`, deprecated upstream, opt-in here):
//! a dialer that may meet another dialer on the same connection.

use crate::codec::{validate_protocol_id, Message};
use crate::config::Config;
use crate::dialer::await_answers;
use crate::error::NegotiationError;
use crate::listener::answer_proposals;
use crate::matcher::ProtocolMatcher;
use crate::message_io::MessageIo;
use crate::negotiated::Negotiated;
use crate::SIMULTANEOUS_CONNECT;
use futures::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

/// The role a simultaneous-open negotiation ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimOpenRole {
    /// We proposed and the remote accepted: we are the initiator of the connection
    /// (the Noise initiator / TLS client, the yamux client).
    Initiator,
    /// The remote won the draw and proposed; we accepted through the matcher.
    Responder,
}

const SELECT_PREFIX: &str = "select:";
const INITIATOR: &str = "initiator";
const RESPONDER: &str = "responder";

/// Negotiates as a dialer that may face another dialer (simultaneous open).
///
/// Sends, in one write, `/multistream/1.0.0`, `/libp2p/simultaneous-connect` and the
/// first of `protocols`.
///
/// - A plain listener answers the header, `na`, then its answer to our first id; we
///   continue as a normal dialer and end as [`SimOpenRole::Initiator`].
/// - If the remote also sent `/libp2p/simultaneous-connect`, both ignore the pipelined
///   proposal and send `select:<random u64>`. The higher number sends `initiator` and
///   then proposes `protocols` from the first again; the lower one sends `responder`
///   and answers proposals through `matcher`, ending as [`SimOpenRole::Responder`].
///   Equal numbers fail with [`NegotiationError::SimultaneousOpenTie`] (the caller may
///   retry on a new connection).
///
/// No timeout is applied here: wrap the call in your runtime's timeout.
pub async fn dialer_select_simopen<R, I>(
    io: R,
    protocols: I,
    matcher: &dyn ProtocolMatcher,
    config: &Config,
) -> Result<(SimOpenRole, String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let span = tracing::debug_span!("mss_simopen");
    simopen(io, protocols, matcher, config)
        .instrument(span)
        .await
}

async fn simopen<R, I>(
    io: R,
    protocols: I,
    matcher: &dyn ProtocolMatcher,
    config: &Config,
) -> Result<(SimOpenRole, String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let max_len = config.max_message_len();
    let mut protocols = protocols.into_iter();
    let first = match protocols.next() {
        Some(id) => id.as_ref().to_owned(),
        None => return Err(NegotiationError::NoProtocolAccepted { tried: Vec::new() }),
    };
    validate_protocol_id(&first, max_len)?;

    let mut io = MessageIo::new(io, max_len);
    io.queue(&Message::Header);
    io.queue(&Message::Protocol(SIMULTANEOUS_CONNECT.to_owned()));
    io.queue(&Message::Protocol(first.clone()));
    io.send().await?;
    io.expect_header().await?;

    match io.recv().await? {
        Message::Na => {
            tracing::debug!("mss: remote is a plain listener");
            let (p, n) = await_answers(io, first, protocols, config).await?;
            Ok((SimOpenRole::Initiator, p, n))
        }
        Message::Protocol(p) if p == SIMULTANEOUS_CONNECT => {
            tracing::debug!("mss: simultaneous open detected");
            match draw_roles(&mut io, config).await? {
                SimOpenRole::Initiator => {
                    io.queue(&Message::Protocol(first.clone()));
                    io.send().await?;
                    expect_text(&mut io, RESPONDER).await?;
                    let (p, n) = await_answers(io, first, protocols, config).await?;
                    Ok((SimOpenRole::Initiator, p, n))
                }
                SimOpenRole::Responder => {
                    expect_text(&mut io, INITIATOR).await?;
                    let (p, n) = answer_proposals(io, matcher, config, false).await?;
                    Ok((SimOpenRole::Responder, p, n))
                }
            }
        }
        other => Err(NegotiationError::UnexpectedMessage {
            received: other.as_str().to_owned(),
            expected: "na or /libp2p/simultaneous-connect",
        }),
    }
}

/// Exchanges `select:` numbers and sends our role message (the initiator's is queued
/// only: it leaves with the first proposal).
async fn draw_roles<R>(
    io: &mut MessageIo<R>,
    config: &Config,
) -> Result<SimOpenRole, NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
{
    let ours: u64 = rand::random();
    io.queue(&Message::Other(format!("{SELECT_PREFIX}{ours}")));
    io.send().await?;

    // The remote pipelined its first proposal before its number: skip proposals.
    let mut skipped = 0usize;
    let theirs = loop {
        match io.recv().await? {
            Message::Protocol(_) if skipped < config.max_na_rounds() => skipped += 1,
            Message::Other(text) if text.starts_with(SELECT_PREFIX) => {
                let digits = text.get(SELECT_PREFIX.len()..).unwrap_or_default();
                break digits.parse::<u64>().map_err(|_| {
                    NegotiationError::InvalidMessage(format!(
                        "bad simultaneous-open number {text:?}"
                    ))
                })?;
            }
            other => {
                return Err(NegotiationError::UnexpectedMessage {
                    received: other.as_str().to_owned(),
                    expected: "select:<number>",
                })
            }
        }
    };
    tracing::debug!(ours, theirs, "mss: simultaneous-open draw");
    if ours == theirs {
        return Err(NegotiationError::SimultaneousOpenTie);
    }
    if ours > theirs {
        io.queue(&Message::Other(INITIATOR.to_owned()));
        Ok(SimOpenRole::Initiator)
    } else {
        io.queue(&Message::Other(RESPONDER.to_owned()));
        io.send().await?;
        Ok(SimOpenRole::Responder)
    }
}

async fn expect_text<R>(
    io: &mut MessageIo<R>,
    expected: &'static str,
) -> Result<(), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
{
    match io.recv().await? {
        Message::Other(text) if text == expected => Ok(()),
        other => Err(NegotiationError::UnexpectedMessage {
            received: other.as_str().to_owned(),
            expected,
        }),
    }
}
