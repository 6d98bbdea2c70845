//! `weft dial` through `/p2p-circuit`: waits for the peer's hole punch (it accepted
//! the relayed connection, so it starts DCUtR) and reports whether the connection
//! became direct and how long it took.

use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use weft_host::dcutr::{Failure, Side};
use weft_host::{Event, PeerId};

/// How long to wait for the peer's hole punch once it started: its three attempts,
/// each an exchange and a punch, with room to spare.
pub const WAIT: Duration = Duration::from_secs(45);

/// How long to wait for the peer to start (it waits for identify, up to 5 s, and
/// starts nothing when it knows no address of its own).
pub const START_WAIT: Duration = Duration::from_secs(10);

/// How the hole punch over a relayed dial ended.
#[derive(Debug, Clone, Serialize)]
pub struct HolePunchReport {
    /// Whether a direct connection replaced the relayed one.
    pub direct: bool,
    /// The direct connection's remote address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// From the relayed connection's upgrade to the direct connection (or to the
    /// verdict), in milliseconds.
    pub after_ms: f64,
    /// The attempt that succeeded, or the last one seen.
    pub attempts: u8,
    /// Why there is no direct connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How long a failure that a weft initiator does not retry
/// ([`Failure::SymmetricUnpunchable`]) waits for a retry anyway, as another
/// implementation may make one (go-libp2p retries up to its third attempt): its
/// next exchange starts within an RTT of the miss.
const RETRY_GRACE: Duration = Duration::from_secs(2);

/// What a failure of the peer's attempt means for the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// The peer retries: wait for the next attempt.
    Retried,
    /// A weft peer gives up here; another may still retry within [`RETRY_GRACE`].
    MaybeRetried,
    /// Nothing follows.
    Final,
}

/// What follows this failure: an attempt that ran out of time or whose dials failed
/// is retried up to the third; one side symmetric ends it at a weft peer; anything
/// else (a failed exchange, no addresses, the relayed connection gone) ends it.
fn after_failure(failure: &Failure) -> AfterFailure {
    match failure {
        Failure::TimedOut { attempts, .. } | Failure::DialsFailed { attempts, .. }
            if *attempts < 3 =>
        {
            AfterFailure::Retried
        }
        Failure::SymmetricUnpunchable { attempts, .. } if *attempts < 3 => {
            AfterFailure::MaybeRetried
        }
        _ => AfterFailure::Final,
    }
}

/// Waits for the outcome of the hole punch with `peer` (we are the responder), at
/// most [`START_WAIT`] for it to start and [`WAIT`] from then; `since` is when the
/// relayed connection was up, `advertised` whether the peer lists the DCUtR protocol
/// (it need not, to start the exchange; the report's reason says so when it did not).
pub async fn wait(
    events: &mut broadcast::Receiver<Event>,
    peer: PeerId,
    since: Instant,
    advertised: bool,
) -> HolePunchReport {
    let mut last: Option<(u8, String)> = None;
    let mut started = false;
    // After a failure a weft peer does not retry: waiting [`RETRY_GRACE`] for
    // another exchange.
    let mut in_grace = false;
    let mut deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            event = events.recv() => event,
        };
        match event {
            Ok(Event::OpenedStream {
                peer: p, protocol, ..
            }) if p == peer && protocol == weft_host::dcutr::PROTOCOL && (!started || in_grace) => {
                started = true;
                in_grace = false;
                deadline = tokio::time::Instant::now() + WAIT;
            }
            Ok(Event::HolePunch {
                peer: p,
                side: Side::Responder,
                outcome,
                attempts,
                ..
            }) if p == peer => match outcome {
                Ok(direct) => {
                    return HolePunchReport {
                        direct: true,
                        remote_addr: Some(direct.remote_addr.to_string()),
                        after_ms: since.elapsed().as_secs_f64() * 1e3,
                        attempts,
                        reason: None,
                    }
                }
                Err(failure) => {
                    let after = after_failure(&failure);
                    last = Some((attempts, failure.to_string()));
                    match after {
                        AfterFailure::Retried => {}
                        AfterFailure::MaybeRetried => {
                            in_grace = true;
                            deadline = tokio::time::Instant::now() + RETRY_GRACE;
                        }
                        AfterFailure::Final => break,
                    }
                }
            },
            Ok(Event::Disconnected { peer: p, .. }) if p == peer => {
                last.get_or_insert((0, "the relayed connection closed".to_string()));
                break;
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    let (attempts, reason) = last.unwrap_or_else(|| {
        if started {
            (0, format!("the hole punch did not end within {WAIT:?}"))
        } else {
            let why = if advertised {
                "it may know no public address of its own"
            } else {
                "it does not list /libp2p/dcutr"
            };
            (
                0,
                format!("the peer started no hole punch within {START_WAIT:?} ({why})"),
            )
        }
    });
    HolePunchReport {
        direct: false,
        remote_addr: None,
        after_ms: since.elapsed().as_secs_f64() * 1e3,
        attempts,
        reason: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_attempt_a_symmetric_miss_or_a_hopeless_case_ends_the_wait() {
        let timed_out = |attempts| Failure::TimedOut {
            attempts,
            local_symmetric: false,
            remote_symmetric: false,
        };
        assert_eq!(after_failure(&timed_out(1)), AfterFailure::Retried);
        assert_eq!(after_failure(&timed_out(3)), AfterFailure::Final);
        let symmetric = |attempts| Failure::SymmetricUnpunchable {
            attempts,
            local_symmetric: true,
            remote_symmetric: false,
        };
        assert_eq!(after_failure(&symmetric(1)), AfterFailure::MaybeRetried);
        assert_eq!(after_failure(&symmetric(3)), AfterFailure::Final);
        assert_eq!(
            after_failure(&Failure::NoRemoteAddresses { received: 0 }),
            AfterFailure::Final
        );
        assert_eq!(
            after_failure(&Failure::RelayedConnectionClosed { attempt: 1 }),
            AfterFailure::Final
        );
    }
}
