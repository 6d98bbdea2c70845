//! The initiator (the spec's B): every inbound relayed connection starts a hole
//! punch of up to [`HolePunchConfig::max_attempts`](super::HolePunchConfig) attempts.

use super::punch::{self, direct_connection, Attempt, PunchError};
use super::{our_addrs, report, Report, Shared};
use crate::conn::ConnState;
use crate::events::Event;
use crate::host::Inner;
use crate::transport::is_circuit;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn, Instrument};
use weft_connmgr::Direction;
use weft_dcutr::{ExchangeError, Initiator, Next, Side, PROTOCOL};

/// How long a hole punch waits for identify to finish on the relayed connection.
const IDENTIFY_WAIT: Duration = Duration::from_secs(5);

/// Watches the host's events for inbound relayed connections, until shutdown.
pub(super) async fn watch(weak: Weak<Inner>, shared: Arc<Shared>) {
    let Some(inner) = weak.upgrade() else { return };
    let mut events = inner.events.subscribe();
    let shutdown = inner.shutdown.clone();
    drop(inner);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.recv() => event,
        };
        match event {
            Ok(Event::Connected {
                connection,
                direction: Direction::Inbound,
                remote_addr,
                ..
            }) if is_circuit(&remote_addr) => {
                let Some(inner) = weak.upgrade() else { break };
                let Some(relayed) = inner.connection(&connection) else {
                    continue;
                };
                let span =
                    tracing::debug_span!("hole_punch", peer = %relayed.peer, relayed = %relayed.id);
                let task = run(inner.clone(), shared.clone(), relayed);
                let shutdown = shutdown.clone();
                inner.tasks.spawn(
                    async move {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = task => {}
                        }
                    }
                    .instrument(span),
                );
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "hole punching missed host events; some relayed connections may stay relayed"
                );
            }
            Err(RecvError::Closed) => break,
        }
    }
}

/// The hole punch over one relayed connection.
async fn run(inner: Arc<Inner>, shared: Arc<Shared>, relayed: Arc<ConnState>) {
    let peer = relayed.peer;
    if direct_connection(&inner, &peer).is_some() {
        debug!(%peer, "already connected directly; no hole punch");
        return;
    }
    wait_for_identify(&inner, &relayed).await;
    let mut machine = Initiator::new(shared.config.clone(), Some(peer), Instant::now());
    let outcome = loop {
        // Subscribed before the exchange: a direct connection that lands from here
        // on ends the attempt.
        let mut events = inner.events.subscribe();
        let ours = our_addrs(&inner);
        let mut stream = match inner.open_stream_on(&relayed, &[PROTOCOL]).await {
            Ok(stream) => stream,
            Err(e) => {
                break Err(exchange_failed(
                    &mut machine,
                    &relayed,
                    ExchangeError::OpenStream(e.to_string()),
                ))
            }
        };
        let plan = match weft_dcutr::initiate(&mut stream, &mut machine, &ours).await {
            Ok(plan) => plan,
            Err(failure) if !relayed.is_usable() => {
                debug!(%failure, "the relayed connection went away during the exchange");
                break Err(machine.relayed_closed());
            }
            Err(failure) => break Err(failure),
        };
        drop(stream);
        let attempt = Attempt {
            side: Side::Initiator,
            remote: &plan.remote,
            punch_at: plan.punch_at,
            deadline: plan.deadline,
            rtt: Some(plan.rtt),
        };
        match punch::run(&inner, &relayed, attempt, &mut events).await {
            Ok(direct) => {
                machine.connected(Instant::now());
                break Ok(direct);
            }
            Err(PunchError::RelayedClosed) => break Err(machine.relayed_closed()),
            Err(PunchError::Attempt(why)) => {
                debug!(attempt = plan.attempt, reason = %why, "hole punching attempt failed");
                match machine.attempt_failed(why) {
                    Next::Retry { .. } => continue,
                    Next::GiveUp(failure) => break Err(failure),
                }
            }
        }
    };
    let report_ = Report {
        peer,
        relayed: relayed.id,
        side: Side::Initiator,
        outcome,
        attempts: machine.attempts(),
        elapsed: machine.elapsed(Instant::now()),
    };
    report(&inner, &shared, report_);
}

/// Waits (at most [`IDENTIFY_WAIT`]) until identify has run with the peer, as
/// go-libp2p does: by then the peer knows its observed addresses, and we know
/// whether it speaks DCUtR.
async fn wait_for_identify(inner: &Inner, relayed: &ConnState) {
    let mut events = inner.events.subscribe();
    if crate::book::first_supported(&inner.writer, &relayed.peer, &[PROTOCOL])
        .await
        .is_some()
    {
        return;
    }
    let identified = async {
        loop {
            match events.recv().await {
                Ok(Event::PeerIdentified { connection, .. }) if connection == relayed.id => return,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    };
    if tokio::time::timeout(IDENTIFY_WAIT, identified)
        .await
        .is_err()
    {
        debug!("no identify within {IDENTIFY_WAIT:?}; punching anyway");
    }
}

fn exchange_failed(
    machine: &mut Initiator,
    relayed: &ConnState,
    error: ExchangeError,
) -> weft_dcutr::Failure {
    if relayed.is_usable() {
        machine.exchange_failed(error)
    } else {
        machine.relayed_closed()
    }
}
