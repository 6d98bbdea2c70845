//! The protocol as two state machines, fed with messages and instants: no stream,
//! no timer, no socket. The async layer ([`crate::exchange`]) and the host run them.
//!
//! - [`Initiator`]: the peer that accepted the relayed connection (the spec's B). It
//!   sends CONNECT, measures the RTT until the peer's CONNECT, sends SYNC and punches
//!   RTT/2 later; a failed attempt is retried up to [`Config::max_attempts`], each
//!   with a fresh exchange (a flawed RTT must not spoil the retries).
//! - [`Responder`]: the peer that dialed through the relay (the spec's A), one per
//!   stream: it answers CONNECT with its own addresses and dials when SYNC arrives.

use crate::addrs::{decode_theirs, encode_ours, looks_symmetric};
use crate::config::Config;
use crate::error::{AttemptFailure, ExchangeError, Failure};
use crate::proto::{HolePunch, Type};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::time::{Duration, Instant};

/// What the initiator does for one attempt once the peer's CONNECT arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PunchPlan {
    /// The attempt (from 1).
    pub attempt: u8,
    /// The RTT of the relayed connection: from our CONNECT to the peer's.
    pub rtt: Duration,
    /// When to dial (TCP) or start sending packets (QUIC): half the RTT after the
    /// SYNC left, when the peer's dial reaches us.
    pub punch_at: Instant,
    /// When the attempt is given up if no direct connection appeared.
    pub deadline: Instant,
    /// The peer's addresses, to punch to.
    pub remote: Vec<Multiaddr>,
}

/// What the initiator does after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start attempt `attempt` (a new stream, a new exchange).
    Retry {
        /// The next attempt's number.
        attempt: u8,
    },
    /// Give up, for this reason.
    GiveUp(Failure),
}

/// A hole punch that produced a direct connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Success {
    /// Attempts made, the successful one included.
    pub attempts: u8,
    /// From the start of the first attempt to the direct connection.
    pub elapsed: Duration,
    /// The RTT measured in the successful attempt.
    pub rtt: Option<Duration>,
}

#[derive(Debug, Clone)]
enum InitiatorState {
    /// Ready to start an attempt.
    Idle,
    /// Our CONNECT went out at `sent_at`.
    AwaitingConnect { sent_at: Instant },
    /// SYNC sent; punching until `deadline`.
    Punching { rtt: Duration, deadline: Instant },
    /// Finished, successfully or not.
    Done,
}

/// The initiator's side of hole punching (the spec's B), over all its attempts.
#[derive(Debug, Clone)]
pub struct Initiator {
    config: Config,
    peer: Option<PeerId>,
    started: Instant,
    attempt: u8,
    state: InitiatorState,
    local_symmetric: bool,
    remote_symmetric: bool,
}

impl Initiator {
    /// A hole punch towards `peer` (used to check the `/p2p/` suffixes of its
    /// addresses), starting at `now`.
    pub fn new(config: Config, peer: Option<PeerId>, now: Instant) -> Self {
        Initiator {
            config,
            peer,
            started: now,
            attempt: 0,
            state: InitiatorState::Idle,
            local_symmetric: false,
            remote_symmetric: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The attempts started so far.
    pub fn attempts(&self) -> u8 {
        self.attempt
    }

    /// Time since the hole punch started.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Whether the hole punch is over.
    pub fn is_done(&self) -> bool {
        matches!(self.state, InitiatorState::Done)
    }

    /// Starts the next attempt at `now`: the CONNECT to send, with `ours` (observed
    /// and predicted addresses, best first). Call it right before the CONNECT is
    /// written: the RTT is measured from here.
    ///
    /// # Errors
    ///
    /// [`Failure::NoLocalAddresses`] when `ours` has no punchable address;
    /// [`Failure::TimedOut`] (with the attempts made) when no attempt is left or one
    /// is still running. Either ends the hole punch.
    pub fn connect(&mut self, ours: &[Multiaddr], now: Instant) -> Result<HolePunch, Failure> {
        if !matches!(self.state, InitiatorState::Idle) || self.attempt >= self.config.max_attempts {
            self.state = InitiatorState::Done;
            return Err(self.exhausted());
        }
        let encoded = encode_ours(ours);
        if encoded.is_empty() {
            self.state = InitiatorState::Done;
            return Err(Failure::NoLocalAddresses);
        }
        self.local_symmetric = looks_symmetric(ours);
        self.attempt += 1;
        self.state = InitiatorState::AwaitingConnect { sent_at: now };
        Ok(HolePunch::connect(encoded))
    }

    /// The peer's answer arrived at `now`: the SYNC to send and the attempt's plan.
    ///
    /// # Errors
    ///
    /// [`Failure::Exchange`] for a message of the wrong type (or out of turn),
    /// [`Failure::NoRemoteAddresses`] when the peer sent nothing punchable,
    /// [`Failure::BothSymmetric`] when both sides look like symmetric NATs (and
    /// [`Config::fail_fast_symmetric`] is on). Each ends the hole punch.
    pub fn on_message(
        &mut self,
        msg: &HolePunch,
        now: Instant,
    ) -> Result<(HolePunch, PunchPlan), Failure> {
        let InitiatorState::AwaitingConnect { sent_at } = self.state else {
            let received = msg.kind().unwrap_or(Type::Sync);
            return Err(self.exchange_failed(ExchangeError::Unexpected {
                expected: Type::Connect,
                received,
            }));
        };
        match msg.kind() {
            Ok(Type::Connect) => {}
            Ok(received) => {
                return Err(self.exchange_failed(ExchangeError::Unexpected {
                    expected: Type::Connect,
                    received,
                }))
            }
            Err(e) => return Err(self.exchange_failed(e)),
        }
        let remote = decode_theirs(&msg.obs_addrs, self.peer);
        if remote.is_empty() {
            self.state = InitiatorState::Done;
            return Err(Failure::NoRemoteAddresses {
                received: msg.obs_addrs.len(),
            });
        }
        self.remote_symmetric = looks_symmetric(&remote);
        if self.config.fail_fast_symmetric && self.local_symmetric && self.remote_symmetric {
            self.state = InitiatorState::Done;
            return Err(Failure::BothSymmetric);
        }
        let rtt = now.saturating_duration_since(sent_at);
        let punch_at = now + rtt / 2;
        let deadline = punch_at + self.config.punch_timeout;
        self.state = InitiatorState::Punching { rtt, deadline };
        Ok((
            HolePunch::sync(),
            PunchPlan {
                attempt: self.attempt,
                rtt,
                punch_at,
                deadline,
                remote,
            },
        ))
    }

    /// The exchange of the current attempt failed (a stream error, a bad message,
    /// the peer's silence): the hole punch ends with that reason.
    pub fn exchange_failed(&mut self, error: ExchangeError) -> Failure {
        self.state = InitiatorState::Done;
        Failure::Exchange {
            attempt: self.attempt.max(1),
            error,
        }
    }

    /// The current attempt produced no direct connection: retry, or give up after
    /// the last attempt, or at once when one side looks symmetric
    /// ([`Config::one_attempt_when_symmetric`], [`Failure::SymmetricUnpunchable`]).
    pub fn attempt_failed(&mut self, why: AttemptFailure) -> Next {
        if !self.is_done()
            && self
                .config
                .symmetric_gives_up(self.local_symmetric, self.remote_symmetric)
        {
            self.state = InitiatorState::Done;
            return Next::GiveUp(Failure::SymmetricUnpunchable {
                attempts: self.attempt,
                local_symmetric: self.local_symmetric,
                remote_symmetric: self.remote_symmetric,
            });
        }
        if self.attempt < self.config.max_attempts && !self.is_done() {
            self.state = InitiatorState::Idle;
            return Next::Retry {
                attempt: self.attempt + 1,
            };
        }
        self.state = InitiatorState::Done;
        Next::GiveUp(match why {
            AttemptFailure::TimedOut(_) => self.exhausted(),
            AttemptFailure::DialsFailed(error) => Failure::DialsFailed {
                attempts: self.attempt,
                error,
            },
        })
    }

    /// The relayed connection closed: the hole punch ends.
    pub fn relayed_closed(&mut self) -> Failure {
        self.state = InitiatorState::Done;
        Failure::RelayedConnectionClosed {
            attempt: self.attempt.max(1),
        }
    }

    /// A direct connection to the peer appeared at `now`.
    pub fn connected(&mut self, now: Instant) -> Success {
        let rtt = match self.state {
            InitiatorState::Punching { rtt, .. } => Some(rtt),
            _ => None,
        };
        self.state = InitiatorState::Done;
        Success {
            attempts: self.attempt,
            elapsed: self.elapsed(now),
            rtt,
        }
    }

    /// When [`on_timeout`](Self::on_timeout) must be called: the peer's answer is
    /// due, or the attempt's punch time is over.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            InitiatorState::AwaitingConnect { sent_at } => {
                Some(sent_at + self.config.exchange_timeout)
            }
            InitiatorState::Punching { deadline, .. } => Some(deadline),
            InitiatorState::Idle | InitiatorState::Done => None,
        }
    }

    /// Time passed: `None` before the [`deadline`](Self::deadline); at or after it,
    /// an exchange timeout ends the punch, a punch timeout fails the attempt.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Next> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        match self.state {
            InitiatorState::AwaitingConnect { .. } => Some(Next::GiveUp(
                self.exchange_failed(ExchangeError::Timeout(self.config.exchange_timeout)),
            )),
            _ => Some(self.attempt_failed(AttemptFailure::TimedOut(self.config.punch_timeout))),
        }
    }

    fn exhausted(&self) -> Failure {
        Failure::TimedOut {
            attempts: self.attempt,
            local_symmetric: self.local_symmetric,
            remote_symmetric: self.remote_symmetric,
        }
    }
}

/// What the responder does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponderStep {
    /// Send this CONNECT back (our addresses).
    Reply(HolePunch),
    /// SYNC arrived: dial these addresses of the peer now (they may be empty when it
    /// sent nothing punchable).
    Dial {
        /// The peer's punchable addresses.
        remote: Vec<Multiaddr>,
        /// How many addresses it sent.
        received: usize,
    },
}

#[derive(Debug, Clone)]
enum ResponderState {
    AwaitingConnect,
    AwaitingSync {
        remote: Vec<Multiaddr>,
        received: usize,
    },
    Done,
}

/// The responder's side of one exchange (the spec's A): one per stream.
#[derive(Debug, Clone)]
pub struct Responder {
    config: Config,
    peer: Option<PeerId>,
    state: ResponderState,
    deadline: Instant,
}

impl Responder {
    /// An exchange with `peer` on a stream opened at `now`.
    pub fn new(config: Config, peer: Option<PeerId>, now: Instant) -> Self {
        let deadline = now + config.exchange_timeout;
        Responder {
            config,
            peer,
            state: ResponderState::AwaitingConnect,
            deadline,
        }
    }

    /// When the peer's next message is due.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The punchable addresses of the peer's CONNECT, once it arrived (empty before,
    /// and after the SYNC handed them over).
    pub fn remote(&self) -> &[Multiaddr] {
        match &self.state {
            ResponderState::AwaitingSync { remote, .. } => remote,
            _ => &[],
        }
    }

    /// A message arrived at `now`; `ours` are the addresses to answer a CONNECT with.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unexpected`] for a message out of turn (a SYNC first, a
    /// second CONNECT, anything after the SYNC), [`ExchangeError::MissingType`] or
    /// [`ExchangeError::UnknownType`].
    pub fn on_message(
        &mut self,
        msg: &HolePunch,
        ours: &[Multiaddr],
        now: Instant,
    ) -> Result<ResponderStep, ExchangeError> {
        let kind = match msg.kind() {
            Ok(kind) => kind,
            Err(e) => {
                self.state = ResponderState::Done;
                return Err(e);
            }
        };
        let state = std::mem::replace(&mut self.state, ResponderState::Done);
        match (state, kind) {
            (ResponderState::AwaitingConnect, Type::Connect) => {
                let remote = decode_theirs(&msg.obs_addrs, self.peer);
                self.state = ResponderState::AwaitingSync {
                    remote,
                    received: msg.obs_addrs.len(),
                };
                self.deadline = now + self.config.exchange_timeout;
                Ok(ResponderStep::Reply(HolePunch::connect(encode_ours(ours))))
            }
            (ResponderState::AwaitingSync { remote, received }, Type::Sync) => {
                Ok(ResponderStep::Dial { remote, received })
            }
            (ResponderState::AwaitingSync { .. }, received) => Err(ExchangeError::Unexpected {
                expected: Type::Sync,
                received,
            }),
            (ResponderState::AwaitingConnect | ResponderState::Done, received) => {
                Err(ExchangeError::Unexpected {
                    expected: Type::Connect,
                    received,
                })
            }
        }
    }
}

/// The pause before the next QUIC punching packet: the spec's random interval
/// between 10 and 200 ms, from a random `seed`.
pub fn quic_punch_interval(seed: u32) -> Duration {
    Duration::from_millis(10 + u64::from(seed % 191))
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiaddr::Protocol;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ours() -> Vec<Multiaddr> {
        vec![
            a("/ip4/1.2.3.4/tcp/4001"),
            a("/ip4/1.2.3.4/udp/4001/quic-v1"),
        ]
    }

    fn theirs() -> HolePunch {
        HolePunch::connect(vec![
            a("/ip4/5.6.7.8/tcp/4001").to_vec(),
            a("/ip4/5.6.7.8/udp/4001/quic-v1").to_vec(),
        ])
    }

    #[test]
    fn the_punch_is_timed_at_half_the_rtt_after_the_sync() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let mut b = Initiator::new(Config::default(), Some(peer), t0);
        let connect = b.connect(&ours(), t0).unwrap();
        assert_eq!(connect.kind(), Ok(Type::Connect));
        assert_eq!(connect.obs_addrs.len(), 2);
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(10)));
        // The answer takes 80 ms: RTT 80 ms, punch 40 ms later.
        let answered = t0 + ms(80);
        let (sync, plan) = b.on_message(&theirs(), answered).unwrap();
        assert_eq!(sync, HolePunch::sync());
        assert_eq!(plan.attempt, 1);
        assert_eq!(plan.rtt, ms(80));
        assert_eq!(plan.punch_at, answered + ms(40));
        assert_eq!(plan.deadline, answered + ms(40) + Duration::from_secs(5));
        assert_eq!(
            plan.remote,
            vec![
                a("/ip4/5.6.7.8/tcp/4001"),
                a("/ip4/5.6.7.8/udp/4001/quic-v1")
            ]
        );
        assert_eq!(b.on_timeout(plan.deadline - ms(1)), None, "not yet");
        let done = b.connected(answered + ms(45));
        assert_eq!(
            done,
            Success {
                attempts: 1,
                elapsed: ms(125),
                rtt: Some(ms(80))
            }
        );
        assert!(b.is_done());
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_zero_rtt_punches_at_once() {
        let t0 = Instant::now();
        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&ours(), t0).unwrap();
        let (_, plan) = b.on_message(&theirs(), t0).unwrap();
        assert_eq!(plan.rtt, Duration::ZERO);
        assert_eq!(plan.punch_at, t0);
    }

    #[test]
    fn each_retry_measures_its_own_rtt_and_the_third_failure_gives_up() {
        let t0 = Instant::now();
        let mut b = Initiator::new(Config::default(), None, t0);
        let mut now = t0;
        for (attempt, rtt) in [(1u8, 300u64), (2, 20), (3, 50)] {
            b.connect(&ours(), now).unwrap();
            now += ms(rtt);
            let (_, plan) = b.on_message(&theirs(), now).unwrap();
            assert_eq!(plan.attempt, attempt);
            assert_eq!(plan.rtt, ms(rtt), "attempt {attempt} has its own RTT");
            assert_eq!(plan.punch_at, now + ms(rtt) / 2);
            now = plan.deadline;
            let next = b.on_timeout(now).unwrap();
            if attempt < 3 {
                assert_eq!(
                    next,
                    Next::Retry {
                        attempt: attempt + 1
                    }
                );
            } else {
                assert_eq!(
                    next,
                    Next::GiveUp(Failure::TimedOut {
                        attempts: 3,
                        local_symmetric: false,
                        remote_symmetric: false
                    })
                );
            }
        }
        assert!(b.is_done());
        // No fourth attempt.
        assert!(matches!(
            b.connect(&ours(), now),
            Err(Failure::TimedOut { attempts: 3, .. })
        ));
        assert_eq!(
            Failure::TimedOut {
                attempts: 3,
                local_symmetric: false,
                remote_symmetric: false
            }
            .to_string(),
            "timed out at attempt 3: no direct connection"
        );
        assert_eq!(
            Failure::TimedOut {
                attempts: 3,
                local_symmetric: false,
                remote_symmetric: true
            }
            .to_string(),
            "timed out at attempt 3: no direct connection (the peer's addresses look like a symmetric NAT's)"
        );
    }

    #[test]
    fn failed_dials_are_retried_and_reported_with_their_error() {
        let t0 = Instant::now();
        let mut b = Initiator::new(Config::default().with_max_attempts(2), None, t0);
        b.connect(&ours(), t0).unwrap();
        b.on_message(&theirs(), t0 + ms(10)).unwrap();
        assert_eq!(
            b.attempt_failed(AttemptFailure::DialsFailed("refused".into())),
            Next::Retry { attempt: 2 }
        );
        b.connect(&ours(), t0 + ms(20)).unwrap();
        b.on_message(&theirs(), t0 + ms(30)).unwrap();
        assert_eq!(
            b.attempt_failed(AttemptFailure::DialsFailed("refused".into())),
            Next::GiveUp(Failure::DialsFailed {
                attempts: 2,
                error: "refused".into()
            })
        );
    }

    #[test]
    fn success_on_a_retry_counts_the_attempts() {
        let t0 = Instant::now();
        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&ours(), t0).unwrap();
        let (_, plan) = b.on_message(&theirs(), t0 + ms(10)).unwrap();
        assert_eq!(
            b.on_timeout(plan.deadline),
            Some(Next::Retry { attempt: 2 })
        );
        let later = plan.deadline + ms(1);
        b.connect(&ours(), later).unwrap();
        b.on_message(&theirs(), later + ms(10)).unwrap();
        let s = b.connected(later + ms(20));
        assert_eq!(s.attempts, 2);
        assert_eq!(s.rtt, Some(ms(10)));
        assert_eq!(s.elapsed, plan.deadline - t0 + ms(21));
    }

    #[test]
    fn no_addresses_on_either_side_end_the_punch_with_that_reason() {
        let t0 = Instant::now();
        let mut b = Initiator::new(Config::default(), None, t0);
        let relayed_only = [a(&format!(
            "/ip4/1.2.3.4/tcp/1/p2p/{}/p2p-circuit",
            PeerId::random()
        ))];
        assert_eq!(b.connect(&relayed_only, t0), Err(Failure::NoLocalAddresses));
        assert!(b.is_done());

        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&ours(), t0).unwrap();
        let empty = HolePunch::connect(vec![a("/dns4/x.example/tcp/1").to_vec(), vec![1, 2]]);
        assert_eq!(
            b.on_message(&empty, t0),
            Err(Failure::NoRemoteAddresses { received: 2 })
        );
        assert!(b.is_done());
    }

    #[test]
    fn two_symmetric_sides_give_up_without_punching() {
        let t0 = Instant::now();
        let symmetric = |ip: &str| -> Vec<Multiaddr> {
            [4001u16, 31002, 48003]
                .iter()
                .map(|p| a(&format!("/ip4/{ip}/tcp/{p}")))
                .collect()
        };
        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&symmetric("1.2.3.4"), t0).unwrap();
        let reply = HolePunch::connect(symmetric("5.6.7.8").iter().map(|a| a.to_vec()).collect());
        assert_eq!(b.on_message(&reply, t0), Err(Failure::BothSymmetric));

        // One symmetric side is tried once, and named in the reason.
        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&symmetric("1.2.3.4"), t0).unwrap();
        let (_, plan) = b.on_message(&theirs(), t0).unwrap();
        let next = b.on_timeout(plan.deadline);
        assert_eq!(
            next,
            Some(Next::GiveUp(Failure::SymmetricUnpunchable {
                attempts: 1,
                local_symmetric: true,
                remote_symmetric: false
            }))
        );
        assert!(b.is_done());
        assert_eq!(
            Failure::SymmetricUnpunchable {
                attempts: 1,
                local_symmetric: false,
                remote_symmetric: true
            }
            .to_string(),
            "no direct connection at attempt 1, and the peer's addresses look like a symmetric NAT's: \
             the other side's NAT filters by port (port-restricted cone or symmetric), which hole \
             punching without port prediction cannot cross; given up"
        );
        // Failed dials end it the same way.
        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&ours(), t0).unwrap();
        b.on_message(&reply, t0).unwrap();
        assert!(matches!(
            b.attempt_failed(AttemptFailure::DialsFailed("refused".into())),
            Next::GiveUp(Failure::SymmetricUnpunchable {
                attempts: 1,
                local_symmetric: false,
                remote_symmetric: true
            })
        ));

        // Off: one symmetric side gets every attempt, and is named in the timeout.
        let config = Config::default()
            .with_one_attempt_when_symmetric(false)
            .with_max_attempts(2);
        let mut b = Initiator::new(config, None, t0);
        b.connect(&symmetric("1.2.3.4"), t0).unwrap();
        let (_, plan) = b.on_message(&theirs(), t0).unwrap();
        assert_eq!(
            b.on_timeout(plan.deadline),
            Some(Next::Retry { attempt: 2 })
        );
        b.connect(&symmetric("1.2.3.4"), plan.deadline).unwrap();
        let (_, plan) = b.on_message(&theirs(), plan.deadline).unwrap();
        assert_eq!(
            b.on_timeout(plan.deadline),
            Some(Next::GiveUp(Failure::TimedOut {
                attempts: 2,
                local_symmetric: true,
                remote_symmetric: false
            }))
        );

        // Off: both symmetric sides still try.
        let mut b = Initiator::new(Config::default().with_fail_fast_symmetric(false), None, t0);
        b.connect(&symmetric("1.2.3.4"), t0).unwrap();
        assert!(b.on_message(&reply, t0).is_ok());
    }

    #[test]
    fn bad_answers_end_the_exchange_with_a_typed_error() {
        let t0 = Instant::now();
        for (msg, error) in [
            (
                HolePunch::sync(),
                ExchangeError::Unexpected {
                    expected: Type::Connect,
                    received: Type::Sync,
                },
            ),
            (
                HolePunch {
                    r#type: None,
                    obs_addrs: vec![],
                },
                ExchangeError::MissingType,
            ),
            (
                HolePunch {
                    r#type: Some(7),
                    obs_addrs: vec![],
                },
                ExchangeError::UnknownType(7),
            ),
        ] {
            let mut b = Initiator::new(Config::default(), None, t0);
            b.connect(&ours(), t0).unwrap();
            assert_eq!(
                b.on_message(&msg, t0),
                Err(Failure::Exchange { attempt: 1, error })
            );
            assert!(b.is_done());
        }
        // An answer that never comes.
        let mut b = Initiator::new(Config::default(), None, t0);
        b.connect(&ours(), t0).unwrap();
        assert_eq!(b.on_timeout(t0 + ms(9999)), None);
        assert_eq!(
            b.on_timeout(t0 + Duration::from_secs(10)),
            Some(Next::GiveUp(Failure::Exchange {
                attempt: 1,
                error: ExchangeError::Timeout(Duration::from_secs(10))
            }))
        );
        // A message when none is awaited.
        let mut b = Initiator::new(Config::default(), None, t0);
        assert!(matches!(
            b.on_message(&theirs(), t0),
            Err(Failure::Exchange { .. })
        ));
    }

    #[test]
    fn the_responder_answers_connect_and_dials_on_sync() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let mut a_side = Responder::new(Config::default(), Some(peer), t0);
        assert_eq!(a_side.deadline(), t0 + Duration::from_secs(10));
        let connect = HolePunch::connect(vec![
            a("/ip4/5.6.7.8/tcp/4001")
                .with(Protocol::P2p(peer))
                .to_vec(),
            a("/ip4/5.6.7.8/tcp/4001").to_vec(),
        ]);
        let step = a_side.on_message(&connect, &ours(), t0 + ms(5)).unwrap();
        assert_eq!(
            step,
            ResponderStep::Reply(HolePunch::connect(
                ours().iter().map(|a| a.to_vec()).collect()
            ))
        );
        assert_eq!(a_side.deadline(), t0 + ms(5) + Duration::from_secs(10));
        let step = a_side
            .on_message(&HolePunch::sync(), &ours(), t0 + ms(6))
            .unwrap();
        assert_eq!(
            step,
            ResponderStep::Dial {
                remote: vec![a("/ip4/5.6.7.8/tcp/4001")],
                received: 2
            }
        );
        // Nothing more is accepted on this stream.
        assert!(a_side.on_message(&HolePunch::sync(), &ours(), t0).is_err());
    }

    #[test]
    fn the_responder_rejects_messages_out_of_turn() {
        let t0 = Instant::now();
        let mut r = Responder::new(Config::default(), None, t0);
        assert_eq!(
            r.on_message(&HolePunch::sync(), &ours(), t0),
            Err(ExchangeError::Unexpected {
                expected: Type::Connect,
                received: Type::Sync
            })
        );
        let mut r = Responder::new(Config::default(), None, t0);
        r.on_message(&theirs(), &ours(), t0).unwrap();
        assert_eq!(
            r.on_message(&theirs(), &ours(), t0),
            Err(ExchangeError::Unexpected {
                expected: Type::Sync,
                received: Type::Connect
            })
        );
        let mut r = Responder::new(Config::default(), None, t0);
        assert_eq!(
            r.on_message(
                &HolePunch {
                    r#type: Some(-1),
                    obs_addrs: vec![]
                },
                &ours(),
                t0
            ),
            Err(ExchangeError::UnknownType(-1))
        );
    }

    #[test]
    fn quic_punching_packets_go_every_10_to_200_ms() {
        assert_eq!(quic_punch_interval(0), ms(10));
        assert_eq!(quic_punch_interval(190), ms(200));
        assert_eq!(quic_punch_interval(191), ms(10));
        for seed in [1u32, 77, 12345, u32::MAX] {
            let d = quic_punch_interval(seed);
            assert!(d >= ms(10) && d <= ms(200), "{d:?}");
        }
    }
}
