//! Helpers shared by the conformance checks: socket pairs, test data, timeouts.

use crate::io::BoxedIo;
use std::future::Future;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// How long any single step of a check may take before it counts as a hang.
///
/// Generous, because CI machines are small and shared; a correct implementation
/// finishes every step in milliseconds.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long something that must happen "promptly" (a reset reaching the remote, a
/// dropped connection failing its streams) may take.
pub(crate) const PROMPT: Duration = Duration::from_secs(5);

/// Awaits `future`, panicking with `what` if it takes longer than `limit`.
pub(crate) async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: did not finish within {limit:?}"),
    }
}

/// Awaits `future` within [`STEP_TIMEOUT`], panicking with `what` on a hang.
pub(crate) async fn step<F: Future>(what: &str, future: F) -> F::Output {
    within(STEP_TIMEOUT, what, future).await
}

/// Two ends of a real TCP connection on 127.0.0.1, dialer first.
pub(crate) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("test suite: bind a TCP listener on 127.0.0.1");
    let addr = listener.local_addr().expect("test suite: listener address");
    let (dialed, accepted) = futures::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.expect("test suite: connect to 127.0.0.1");
    let (accepted, _) = accepted.expect("test suite: accept on 127.0.0.1");
    dialed
        .set_nodelay(true)
        .expect("test suite: set TCP_NODELAY");
    accepted
        .set_nodelay(true)
        .expect("test suite: set TCP_NODELAY");
    (dialed, accepted)
}

/// Two ends of a real TCP connection on 127.0.0.1 as [`BoxedIo`], dialer first.
pub(crate) async fn boxed_tcp_pair() -> (BoxedIo, BoxedIo) {
    let (dialed, accepted) = tcp_pair().await;
    (Box::new(dialed.compat()), Box::new(accepted.compat()))
}

/// Two ends of an in-memory pipe as [`BoxedIo`], with a small buffer so that
/// backpressure shows.
pub(crate) fn boxed_memory_pair() -> (BoxedIo, BoxedIo) {
    let (a, b) = tokio::io::duplex(16 * 1024);
    (Box::new(a.compat()), Box::new(b.compat()))
}

/// `len` bytes of deterministic, non-repeating test data; `seed` makes streams differ.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = word.len().min(len - out.len());
        out.extend_from_slice(&word[..take]);
    }
    out
}

/// Panics with a short description of the first difference if `got != want`.
pub(crate) fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first_difference = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: received {} bytes, expected {}; first difference at offset {first_difference}",
        got.len(),
        want.len()
    );
}

/// A memory budget that grants everything up to `limit` (shared by the priorities
/// as go-libp2p's resource manager shares a scope) and counts what is in use, and the
/// most that ever was. Giving back more than was reserved panics.
///
/// For checking an implementation's charges in its own tests, as the suite does.
#[derive(Debug, Default)]
pub struct CountingBudget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl CountingBudget {
    /// A budget of `limit` bytes and the handle to give an implementation.
    pub fn new(limit: usize) -> (std::sync::Arc<CountingBudget>, crate::Budget) {
        let source = std::sync::Arc::new(CountingBudget {
            limit,
            ..CountingBudget::default()
        });
        (source.clone(), crate::Budget::new(source))
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl crate::MemoryBudget for CountingBudget {
    fn try_reserve(
        &self,
        bytes: usize,
        priority: crate::Priority,
    ) -> Result<(), crate::BudgetDenied> {
        use std::sync::atomic::Ordering;
        let share = usize::try_from(priority.share_of(self.limit as u64)).unwrap_or(usize::MAX);
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used.saturating_add(bytes) <= share).then_some(used + bytes)
            })
            .map(|before| {
                self.peak.fetch_max(before + bytes, Ordering::SeqCst);
            })
            .map_err(|used| crate::BudgetDenied {
                requested: bytes,
                reason: format!("test suite budget: {used} of {share} bytes in use").into(),
            })
    }

    fn release(&self, bytes: usize) {
        use std::sync::atomic::Ordering;
        let before = self.used.fetch_sub(bytes, Ordering::SeqCst);
        assert!(
            before >= bytes,
            "test suite budget: {bytes} bytes given back, only {before} were reserved"
        );
    }
}

/// Waits until `condition` holds, for at most [`PROMPT`].
pub(crate) async fn eventually_within(what: &str, condition: impl Fn() -> bool) {
    within(PROMPT, what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
