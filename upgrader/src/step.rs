//! Which step an upgrade is in, so that a timeout can name it.

use crate::error::UpgradeStep;
use std::sync::atomic::{AtomicU8, Ordering};

/// The step in progress, updated by the pipeline and read when the timeout fires.
#[derive(Debug)]
pub(crate) struct StepTracker(AtomicU8);

const STEPS: [UpgradeStep; 5] = [
    UpgradeStep::NegotiateSecurity,
    UpgradeStep::SimultaneousOpen,
    UpgradeStep::Handshake,
    UpgradeStep::NegotiateMuxer,
    UpgradeStep::Muxer,
];

impl StepTracker {
    /// Starts at [`UpgradeStep::NegotiateSecurity`].
    pub(crate) fn new() -> Self {
        StepTracker(AtomicU8::new(0))
    }

    pub(crate) fn set(&self, step: UpgradeStep) {
        let index = STEPS.iter().position(|s| *s == step).unwrap_or(0);
        self.0.store(index as u8, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> UpgradeStep {
        STEPS
            .get(usize::from(self.0.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or(UpgradeStep::NegotiateSecurity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_every_step() {
        let tracker = StepTracker::new();
        assert_eq!(tracker.get(), UpgradeStep::NegotiateSecurity);
        for step in STEPS {
            tracker.set(step);
            assert_eq!(tracker.get(), step);
        }
    }
}
