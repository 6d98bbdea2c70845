//! What the transport's integration tests share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use weft_upgrader::{BudgetDenied, MemoryBudget, Priority};

/// A budget with a plain byte limit (any priority) that counts what it holds and
/// the most it held.
#[derive(Default)]
pub struct Limited {
    pub limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl Limited {
    pub fn new(limit: usize) -> Arc<Limited> {
        Arc::new(Limited {
            limit,
            ..Default::default()
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// The most bytes ever reserved at once.
    #[allow(dead_code)] // not every test binary asks
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl MemoryBudget for Limited {
    fn try_reserve(&self, bytes: usize, _priority: Priority) -> Result<(), BudgetDenied> {
        let used = self.used.load(Ordering::SeqCst);
        if used + bytes > self.limit {
            return Err(BudgetDenied {
                requested: bytes,
                reason: format!("{used} of {} used", self.limit).into(),
            });
        }
        let now = self.used.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(())
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
    }
}
