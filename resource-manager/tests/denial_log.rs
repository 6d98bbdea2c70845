//! The denial log line, in a test binary of its own.
//!
//! `tracing` caches per call site whether anyone listens. A test that sets a
//! subscriber only for its own thread (`with_default`) races with other tests whose
//! threads reach the same call site with no subscriber at all: that site can be
//! cached as "never" and the line is not written. No other test runs in this
//! process, so nothing else reaches the denial call site.

use std::sync::Arc;
use weft_resource_manager::{Direction, Limits, Multiaddr, ResourceManager};

const MIB: u64 = 1 << 20;

fn remote() -> Multiaddr {
    "/ip4/192.0.2.1/tcp/4001".parse().unwrap()
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_denial_is_logged_at_debug_with_the_scope_usage() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut limits = Limits::scaled(256 * MIB, 512);
    limits.connection = limits.connection.with_memory(1000);
    let manager = ResourceManager::new(limits);
    tracing::subscriber::with_default(subscriber, || {
        let conn = manager
            .open_connection(Direction::Outbound, &remote(), true)
            .unwrap();
        conn.reserve_memory(600, 255).unwrap();
        assert!(conn.reserve_memory(600, 255).is_err());
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("resource manager: denied"))
        .unwrap_or_else(|| panic!("no denial logged in {log:?}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("scope=connection"), "{line}");
    assert!(line.contains("resource=\"memory\""), "{line}");
    assert!(line.contains("used=600"), "{line}");
    assert!(line.contains("memory: 600"), "usage missing: {line}");
    assert!(
        line.contains("connections_outbound: 1"),
        "usage missing: {line}"
    );
}
