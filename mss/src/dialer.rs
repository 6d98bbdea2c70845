//! The dialer (initiator) role: propose ids in order until one is echoed.

use crate::codec::{validate_protocol_id, Message};
use crate::config::{Config, Version};
use crate::error::NegotiationError;
use crate::message_io::MessageIo;
use crate::negotiated::Negotiated;
use futures::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

/// Negotiates as the dialer with the default [`Config`].
///
/// See [`dialer_select_with`].
pub async fn dialer_select<R, I>(
    io: R,
    protocols: I,
    version: Version,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    dialer_select_with(io, protocols, version, &Config::default()).await
}

/// Negotiates as the dialer: proposes `protocols` in order and returns the first one
/// the listener echoes, with the stream that now belongs to it.
///
/// The header and the first proposal leave in one write, without waiting for the
/// listener's header. After `na` the next id is proposed; when none is left the result
/// is [`NegotiationError::NoProtocolAccepted`]. More than
/// [`Config::max_na_rounds`] refusals give [`NegotiationError::TooManyRounds`].
///
/// With [`Version::V1Lazy`] and exactly one protocol this returns at once, without any
/// I/O: see [`Negotiated`] for how the proposal then travels with the first data.
///
/// No timeout is applied here: wrap the call in your runtime's timeout.
pub async fn dialer_select_with<R, I>(
    io: R,
    protocols: I,
    version: Version,
    config: &Config,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let span = tracing::debug_span!("mss_dialer", ?version);
    dialer(io, protocols, version, config)
        .instrument(span)
        .await
}

async fn dialer<R, I>(
    io: R,
    protocols: I,
    version: Version,
    config: &Config,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut protocols = protocols.into_iter().peekable();
    let first = next_proposal(&mut protocols, config)?
        .ok_or(NegotiationError::NoProtocolAccepted { tried: Vec::new() })?;
    let mut io = MessageIo::new(io, config.max_message_len());
    io.queue(&Message::Header);
    io.queue(&Message::Protocol(first.clone()));
    if version == Version::V1Lazy && protocols.peek().is_none() {
        tracing::debug!(protocol = %first, "mss: lazy proposal");
        return Ok((first.clone(), Negotiated::expecting(io, first)));
    }
    io.send().await?;
    io.expect_header().await?;
    await_answers(io, first, protocols, config).await
}

/// Takes and validates the next id to propose.
fn next_proposal<I>(protocols: &mut I, config: &Config) -> Result<Option<String>, NegotiationError>
where
    I: Iterator,
    I::Item: AsRef<str>,
{
    let Some(id) = protocols.next() else {
        return Ok(None);
    };
    let id = id.as_ref();
    validate_protocol_id(id, config.max_message_len())?;
    Ok(Some(id.to_owned()))
}

/// Reads the answer to `current` (already sent) and proposes the rest after each `na`.
/// The header exchange must be over.
pub(crate) async fn await_answers<R, I>(
    mut io: MessageIo<R>,
    mut current: String,
    mut rest: I,
    config: &Config,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    I: Iterator,
    I::Item: AsRef<str>,
{
    let mut tried = Vec::new();
    loop {
        match io.recv().await? {
            Message::Protocol(p) if p == current => {
                tracing::debug!(protocol = %p, "mss: protocol accepted");
                return Ok((current, Negotiated::completed(io)));
            }
            Message::Na => {
                tracing::debug!(protocol = %current, "mss: protocol refused");
                tried.push(current);
                let Some(next) = next_proposal(&mut rest, config)? else {
                    return Err(NegotiationError::NoProtocolAccepted { tried });
                };
                if tried.len() >= config.max_na_rounds() {
                    return Err(NegotiationError::TooManyRounds {
                        max: config.max_na_rounds(),
                    });
                }
                io.queue(&Message::Protocol(next.clone()));
                io.send().await?;
                current = next;
            }
            other => {
                return Err(NegotiationError::UnexpectedMessage {
                    received: other.as_str().to_owned(),
                    expected: "the echo of our proposal or na",
                })
            }
        }
    }
}
