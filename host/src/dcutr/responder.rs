//! The responder (the spec's A): the `/libp2p/dcutr` handler. It answers the
//! peer's CONNECT with our addresses and dials the peer's when SYNC arrives; each
//! exchange is one attempt, reported on its own. When both sides' addresses look
//! like symmetric NATs the peer ends the exchange instead of sending SYNC, and the
//! responder reports that reason ([`Failure::BothSymmetric`]), not a failed exchange.
//! When one side looks symmetric, a missed attempt is reported as
//! [`Failure::SymmetricUnpunchable`], the initiator's last word under the same rule.

use super::punch::{self, Attempt, PunchError};
use super::{our_addrs, report, Report, Shared};
use crate::handlers::{Handler, HandlerOptions};
use crate::host::Inner;
use crate::stream::Stream;
use crate::transport::is_circuit;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, Instrument};
use weft_dcutr::{looks_symmetric, AttemptFailure, Failure, Side, PROTOCOL};

/// Exchanges one peer may run with us at once (a retry may overlap the end of the
/// attempt before it).
const MAX_STREAMS_PER_PEER: usize = 2;

/// Registers the handler.
pub(super) fn install(inner: &Arc<Inner>, shared: Arc<Shared>) {
    let weak = Arc::downgrade(inner);
    let handler: Handler = Arc::new(move |stream: Stream| {
        let weak = weak.clone();
        let shared = shared.clone();
        Box::pin(async move {
            if let Some(inner) = weak.upgrade() {
                let span = tracing::debug_span!("hole_punch_answer", peer = %stream.peer());
                serve(inner, shared, stream).instrument(span).await;
            }
        })
    });
    inner.add_exact_handler(
        PROTOCOL.to_string(),
        handler,
        HandlerOptions::default().with_max_inbound_streams_per_peer(Some(MAX_STREAMS_PER_PEER)),
    );
}

/// Answers one exchange and punches.
async fn serve(inner: Arc<Inner>, shared: Arc<Shared>, mut stream: Stream) {
    let peer = stream.peer();
    let Some(relayed) = inner.connection(&stream.connection()) else {
        return;
    };
    if !is_circuit(&relayed.remote_addr) {
        debug!(%peer, "hole punching asked over a direct connection; refused");
        stream.reset();
        return;
    }
    let mut attempt = shared.next_responder_attempt(&inner, relayed.id);
    let started = Instant::now();
    let mut events = inner.events.subscribe();
    let ours = our_addrs(&inner);
    let local_symmetric = looks_symmetric(&ours);
    // The peer may punch before its SYNC is read here (it dials half an RTT after
    // sending it): from its CONNECT on, an inbound TCP connection from its IPs takes
    // our role of the punch.
    let mut promise = None;
    let mut remote_symmetric = false;
    let exchanged =
        weft_dcutr::respond_with(&mut stream, &shared.config, Some(peer), &ours, |remote| {
            remote_symmetric = looks_symmetric(remote);
            let ips = super::punch::tcp_ips(remote);
            promise = Some(inner.inbound_roles.promise(
                &ips,
                peer,
                Side::Responder.security_role(),
            ));
        })
        .await;
    drop(stream);
    let outcome = match exchanged {
        Err(error) if !relayed.is_usable() => {
            debug!(%error, "the relayed connection went away during the exchange");
            Err(Failure::RelayedConnectionClosed { attempt })
        }
        // The peer ends the exchange without a SYNC the moment our answer shows that
        // both sides look symmetric (the initiator's rule): its verdict, not a
        // broken exchange.
        Err(error) if shared.config.fail_fast_symmetric && remote_symmetric && local_symmetric => {
            debug!(%error, "the peer gave up: both sides look symmetric");
            Err(Failure::BothSymmetric)
        }
        Err(error) => Err(Failure::Exchange { attempt, error }),
        Ok((remote, received)) if remote.is_empty() => Err(Failure::NoRemoteAddresses { received }),
        Ok((remote, _)) => {
            let remote_symmetric = looks_symmetric(&remote);
            let now = Instant::now();
            let plan = Attempt {
                side: Side::Responder,
                remote: &remote,
                punch_at: now,
                deadline: now + shared.config.punch_timeout,
                rtt: None,
            };
            let punched = punch::run(&inner, &relayed, plan, &mut events).await;
            drop(promise);
            match punched {
                // A direct connection that came while a later exchange ran is that
                // exchange's success.
                Ok(direct) => {
                    attempt = attempt.max(shared.responder_attempt(relayed.id));
                    Ok(direct)
                }
                Err(PunchError::RelayedClosed) => Err(Failure::RelayedConnectionClosed { attempt }),
                // The initiator's rule: with a symmetric-looking side, a missed
                // attempt is the last (when the peer is weft; another
                // implementation may still retry, and is answered).
                Err(PunchError::Attempt(_))
                    if shared
                        .config
                        .symmetric_gives_up(local_symmetric, remote_symmetric) =>
                {
                    Err(Failure::SymmetricUnpunchable {
                        attempts: attempt,
                        local_symmetric,
                        remote_symmetric,
                    })
                }
                Err(PunchError::Attempt(AttemptFailure::DialsFailed(error))) => {
                    Err(Failure::DialsFailed {
                        attempts: attempt,
                        error,
                    })
                }
                Err(PunchError::Attempt(_)) => Err(Failure::TimedOut {
                    attempts: attempt,
                    local_symmetric,
                    remote_symmetric,
                }),
            }
        }
    };
    let r = Report {
        peer,
        relayed: relayed.id,
        side: Side::Responder,
        outcome,
        attempts: attempt,
        elapsed: started.elapsed(),
    };
    report(&inner, &shared, r);
}
