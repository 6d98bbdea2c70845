//! The listener (responder) role: answer proposals until one is accepted.

use crate::codec::{encode_ls_response, validate_protocol_id, Message};
use crate::config::Config;
use crate::error::NegotiationError;
use crate::matcher::ProtocolMatcher;
use crate::message_io::MessageIo;
use crate::negotiated::Negotiated;
use crate::SIMULTANEOUS_CONNECT;
use futures::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

/// Negotiates as the listener with the default [`Config`].
///
/// See [`listener_select_with`].
pub async fn listener_select<R>(
    io: R,
    matcher: &dyn ProtocolMatcher,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
{
    listener_select_with(io, matcher, &Config::default()).await
}

/// Negotiates as the listener: checks the header, then answers each proposal with
/// its echo if `matcher` accepts it, `na` otherwise, and `ls` with
/// [`ProtocolMatcher::supported`] (valid ids only, as many as fit one message). It
/// returns the accepted id and the stream that now belongs to it.
///
/// Our header goes out in the same write as the first answer when the dialer's first
/// proposal arrived with its header (the usual pipelined case); if not, the header is
/// sent on its own first, so dialers that wait for it are not stalled.
/// `/libp2p/simultaneous-connect` is always answered with `na`. Text that is not a
/// protocol id (does not start with `/`) is answered with `na` too, like
/// go-multistream. A second header or a `na` from the dialer is a protocol violation.
/// More than [`Config::max_na_rounds`] refusals give
/// [`NegotiationError::TooManyRounds`].
///
/// The listener never loses bytes that follow the accepted proposal: they are
/// returned first by the [`Negotiated`] stream.
///
/// No timeout is applied here: wrap the call in your runtime's timeout.
pub async fn listener_select_with<R>(
    io: R,
    matcher: &dyn ProtocolMatcher,
    config: &Config,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::debug_span!("mss_listener");
    async move {
        let mut io = MessageIo::new(io, config.max_message_len());
        io.expect_header().await?;
        answer_proposals(io, matcher, config, true).await
    }
    .instrument(span)
    .await
}

/// The listener loop after the dialer's header was received. With `header_due`, our
/// own header has not been sent yet.
pub(crate) async fn answer_proposals<R>(
    mut io: MessageIo<R>,
    matcher: &dyn ProtocolMatcher,
    config: &Config,
    mut header_due: bool,
) -> Result<(String, Negotiated<R>), NegotiationError>
where
    R: AsyncRead + AsyncWrite + Unpin,
{
    let mut refused = 0usize;
    loop {
        if header_due && !io.has_buffered_message() {
            io.queue(&Message::Header);
            io.send().await?;
            header_due = false;
        }
        let msg = io.recv().await?;
        if header_due {
            io.queue(&Message::Header);
            header_due = false;
        }
        match msg {
            Message::Protocol(p) if p != SIMULTANEOUS_CONNECT && matcher.matches(&p) => {
                tracing::debug!(protocol = %p, "mss: accepting");
                io.queue(&Message::Protocol(p.clone()));
                io.send().await?;
                return Ok((p, Negotiated::completed(io)));
            }
            Message::Protocol(_) | Message::Other(_) | Message::Ls => {
                if refused >= config.max_na_rounds() {
                    return Err(NegotiationError::TooManyRounds {
                        max: config.max_na_rounds(),
                    });
                }
                refused += 1;
                if msg == Message::Ls {
                    queue_ls_answer(&mut io, matcher);
                } else {
                    tracing::debug!(protocol = msg.as_str(), "mss: refusing");
                    io.queue(&Message::Na);
                }
                io.send().await?;
            }
            Message::Header | Message::Na => {
                return Err(NegotiationError::UnexpectedMessage {
                    received: msg.as_str().to_owned(),
                    expected: "a protocol proposal or ls",
                })
            }
        }
    }
}

fn queue_ls_answer<R>(io: &mut MessageIo<R>, matcher: &dyn ProtocolMatcher) {
    let max_len = io.max_len();
    let supported: Vec<String> = matcher
        .supported()
        .into_iter()
        .filter(|id| match validate_protocol_id(id, max_len) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "mss: not listing an invalid protocol id");
                false
            }
        })
        .collect();
    let listed = encode_ls_response(&supported, max_len, io.write_buf_mut());
    if listed < supported.len() {
        tracing::warn!(
            listed,
            supported = supported.len(),
            "mss: ls answer truncated to the maximum message length"
        );
    }
}
