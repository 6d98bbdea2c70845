//! Keep-alive: notice a link that stopped passing bytes without closing.
//!
//! [`KeepAliveState`] is pure (the clock is passed in); the tap polls it from a
//! timer and writes the pings it asks for. Any inbound byte counts as a sign of
//! life; after `idle` of silence one ping goes out, and after `idle + timeout` of
//! silence the connection has failed. The pings carry opaque values of their own
//! ([`is_ours`]), whose answers the tap consumes: the `yamux` crate fails the
//! connection on an answer to a ping it did not send.

use crate::config::KeepAlive;
use std::time::{Duration, Instant};

/// The high half of every keep-alive ping's opaque value ("we"). The `yamux` crate
/// numbers its own pings from 0, one every 10 s: it never gets there.
const OURS: u32 = 0x7765_0000;

/// Whether a ping value is one of ours.
pub(crate) fn is_ours(value: u32) -> bool {
    value & 0xFFFF_0000 == OURS
}

/// What the keep-alive wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing until the deadline.
    Wait(Instant),
    /// Send a ping with this opaque value, then wait until the deadline.
    Ping(u32, Instant),
    /// Nothing arrived for `idle + timeout`: the link is dead.
    Dead,
}

/// The keep-alive of one connection.
#[derive(Debug)]
pub(crate) struct KeepAliveState {
    settings: KeepAlive,
    /// When the last inbound byte arrived (or the connection started).
    last_inbound: Instant,
    /// A ping went out during the current silence.
    pinged: bool,
    next_value: u16,
}

impl KeepAliveState {
    /// A keep-alive that starts counting silence at `now`.
    pub(crate) fn new(settings: KeepAlive, now: Instant) -> Self {
        KeepAliveState {
            settings,
            last_inbound: now,
            pinged: false,
            next_value: 0,
        }
    }

    /// Inbound bytes arrived at `now`.
    pub(crate) fn on_inbound(&mut self, now: Instant) {
        self.last_inbound = now;
        self.pinged = false;
    }

    /// What to do at `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> Action {
        let ping_at = self.last_inbound + self.settings.idle;
        let dead_at = ping_at + self.settings.timeout;
        if now >= dead_at {
            return Action::Dead;
        }
        if now < ping_at {
            return Action::Wait(ping_at);
        }
        if self.pinged {
            return Action::Wait(dead_at);
        }
        self.pinged = true;
        let value = OURS | u32::from(self.next_value);
        self.next_value = self.next_value.wrapping_add(1);
        Action::Ping(value, dead_at)
    }

    /// The error a dead link fails the connection with.
    pub(crate) fn error(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "keep-alive: no answer from the remote within {}",
                human(self.settings.timeout)
            ),
        )
    }
}

/// "15 s", "500 ms".
fn human(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> KeepAlive {
        KeepAlive::default()
    }

    #[test]
    fn pings_once_after_idle_then_declares_the_link_dead() {
        let start = Instant::now();
        let mut state = KeepAliveState::new(settings(), start);
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(state.poll(at(5)), Action::Wait(at(10)));
        let Action::Ping(value, deadline) = state.poll(at(10)) else {
            panic!("expected a ping")
        };
        assert!(is_ours(value));
        assert_eq!(deadline, at(25));
        // One ping per silence.
        assert_eq!(state.poll(at(12)), Action::Wait(at(25)));
        assert_eq!(state.poll(at(25)), Action::Dead);
        assert_eq!(
            state.error().to_string(),
            "keep-alive: no answer from the remote within 15 s"
        );
    }

    #[test]
    fn inbound_traffic_postpones_everything() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut state = KeepAliveState::new(settings(), start);
        assert!(matches!(state.poll(at(10)), Action::Ping(..)));
        state.on_inbound(at(20));
        assert_eq!(state.poll(at(26)), Action::Wait(at(30)));
        let Action::Ping(second, _) = state.poll(at(30)) else {
            panic!("expected a second ping")
        };
        assert!(is_ours(second));
        assert_eq!(state.poll(at(44)), Action::Wait(at(45)));
        assert_eq!(state.poll(at(45)), Action::Dead);
    }

    #[test]
    fn yamux_ping_values_are_not_ours() {
        assert!(!is_ours(0));
        assert!(!is_ours(12345));
        assert!(is_ours(OURS | 7));
        assert_eq!(human(Duration::from_millis(300)), "300 ms");
    }
}
