//! The async layer: one exchange on a stream already negotiated to
//! [`PROTOCOL`](crate::PROTOCOL), driving the state machines with the real clock.
//! Each read is bounded in size ([`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN)) and in
//! time ([`Config::exchange_timeout`]).

use crate::codec::{read_message, write_message};
use crate::config::Config;
use crate::error::{ExchangeError, Failure};
use crate::machine::{Initiator, PunchPlan, Responder, ResponderStep};
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::time::Instant;
use tracing::{debug, Instrument};

/// Runs the initiator's exchange of one attempt on `io`: CONNECT with `ours`, the
/// peer's CONNECT (the RTT), SYNC. Returns the attempt's plan; wait until its
/// [`punch_at`](PunchPlan::punch_at) before punching.
///
/// # Errors
///
/// The [`Failure`] that ends the hole punch (see [`Initiator`]).
pub async fn initiate<S>(
    io: &mut S,
    machine: &mut Initiator,
    ours: &[Multiaddr],
) -> Result<PunchPlan, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::debug_span!("dcutr_initiate", attempt = machine.attempts() + 1);
    async {
        let connect = machine.connect(ours, Instant::now())?;
        let deadline = machine.deadline();
        let answer = async {
            write_message(io, &connect).await?;
            read_message(io).await
        };
        let answer = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), answer)
                .await
                .unwrap_or(Err(ExchangeError::Timeout(
                    machine.config().exchange_timeout,
                ))),
            None => answer.await,
        };
        let answer = answer.map_err(|e| machine.exchange_failed(e))?;
        let (sync, plan) = machine.on_message(&answer, Instant::now())?;
        write_message(io, &sync)
            .await
            .map_err(|e| machine.exchange_failed(e))?;
        // The stream has done its job; a failed close changes nothing.
        let _ = io.close().await;
        debug!(rtt = ?plan.rtt, remote = ?plan.remote, "exchange done");
        Ok(plan)
    }
    .instrument(span)
    .await
}

/// Runs the responder's exchange on `io`: answers the peer's CONNECT with `ours`,
/// waits for its SYNC, and returns the peer's punchable addresses (possibly none;
/// see [`ResponderStep::Dial`]) with how many it sent: dial them at once.
///
/// # Errors
///
/// [`ExchangeError`]: a stream error, a bad or out-of-turn message, or the peer's
/// silence past [`Config::exchange_timeout`].
pub async fn respond<S>(
    io: &mut S,
    config: &Config,
    peer: Option<PeerId>,
    ours: &[Multiaddr],
) -> Result<(Vec<Multiaddr>, usize), ExchangeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    respond_with(io, config, peer, ours, |_| {}).await
}

/// [`respond`], calling `on_connect` with the peer's punchable addresses as soon as
/// its CONNECT arrived, before our answer goes out: the peer may punch from then on
/// (one RTT later, or earlier when our SYNC is read late), so the host prepares for
/// its connections there.
///
/// # Errors
///
/// As [`respond`].
pub async fn respond_with<S>(
    io: &mut S,
    config: &Config,
    peer: Option<PeerId>,
    ours: &[Multiaddr],
    mut on_connect: impl FnMut(&[Multiaddr]),
) -> Result<(Vec<Multiaddr>, usize), ExchangeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut machine = Responder::new(config.clone(), peer, Instant::now());
    let span = tracing::debug_span!("dcutr_respond", ?peer);
    async {
        loop {
            let msg = tokio::time::timeout_at(machine.deadline().into(), read_message(io))
                .await
                .map_err(|_| ExchangeError::Timeout(config.exchange_timeout))??;
            match machine.on_message(&msg, ours, Instant::now())? {
                ResponderStep::Reply(reply) => {
                    on_connect(machine.remote());
                    write_message(io, &reply).await?
                }
                ResponderStep::Dial { remote, received } => {
                    debug!(?remote, received, "SYNC received; dialing");
                    return Ok((remote, received));
                }
            }
        }
    }
    .instrument(span)
    .await
}
