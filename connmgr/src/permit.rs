//! RAII permits for connections still in their handshake.

use std::fmt;

/// A pending-connection slot, held from the limit check until the handshake ends.
///
/// Dropping the permit gives the slot back, so a failed or timed-out handshake
/// releases it without any explicit call. A successful handshake hands the permit
/// to [`ConnectionPolicy::established`](crate::ConnectionPolicy::established), which
/// releases it and counts the connection as established instead.
#[must_use = "dropping the permit releases the pending slot at once"]
pub struct PendingPermit {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl PendingPermit {
    /// A permit that runs `release` exactly once, when it is dropped.
    ///
    /// Custom policies use this to give back what they reserved.
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> PendingPermit {
        PendingPermit {
            release: Some(Box::new(release)),
        }
    }

    /// A permit that reserved nothing and releases nothing.
    pub fn unlimited() -> PendingPermit {
        PendingPermit { release: None }
    }

    /// Gives the slot back now (the same as dropping the permit).
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for PendingPermit {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl fmt::Debug for PendingPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingPermit")
            .field("reserved", &self.release.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn release_runs_once_on_drop() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        let permit = PendingPermit::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(count.load(Ordering::SeqCst), 0);
        permit.release();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        drop(PendingPermit::unlimited());
    }
}
