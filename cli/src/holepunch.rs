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

impl HolePunchReport {
    /// No hole punch was attempted, for `reason`.
    pub fn not_attempted(reason: &str) -> Self {
        HolePunchReport {
            direct: false,
            remote_addr: None,
            after_ms: 0.0,
            attempts: 0,
            reason: Some(reason.to_string()),
        }
    }
}

/// Whether the peer gives up after this failure: an attempt that ran out of time or
/// whose dials failed is retried up to the third; anything else (a failed exchange,
/// no addresses, the relayed connection gone) ends it.
fn final_failure(failure: &Failure) -> bool {
    match failure {
        Failure::TimedOut { attempts, .. } | Failure::DialsFailed { attempts, .. } => {
            *attempts >= 3
        }
        _ => true,
    }
}

/// Waits for the outcome of the hole punch with `peer` (we are the responder), at
/// most [`START_WAIT`] for it to start and [`WAIT`] from then; `since` is when the
/// relayed connection was up.
pub async fn wait(
    events: &mut broadcast::Receiver<Event>,
    peer: PeerId,
    since: Instant,
) -> HolePunchReport {
    let mut last: Option<(u8, String)> = None;
    let mut started = false;
    let mut deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            event = events.recv() => event,
        };
        match event {
            Ok(Event::OpenedStream {
                peer: p, protocol, ..
            }) if p == peer && protocol == weft_host::dcutr::PROTOCOL && !started => {
                started = true;
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
                    let done = final_failure(&failure);
                    last = Some((attempts, failure.to_string()));
                    if done {
                        break;
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
            (
                0,
                format!(
                    "the peer started no hole punch within {START_WAIT:?} (it may know no public address of its own)"
                ),
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
    fn only_the_last_attempt_or_a_hopeless_case_is_final() {
        let timed_out = |attempts| Failure::TimedOut {
            attempts,
            local_symmetric: false,
            remote_symmetric: false,
        };
        assert!(!final_failure(&timed_out(1)));
        assert!(final_failure(&timed_out(3)));
        assert!(final_failure(&Failure::NoRemoteAddresses { received: 0 }));
        assert!(final_failure(&Failure::RelayedConnectionClosed {
            attempt: 1
        }));
    }
}
