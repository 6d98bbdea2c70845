//! Congestion control: which of quinn's controllers a connection runs.

use quinn::congestion::{BbrConfig, ControllerFactory, CubicConfig};
use std::sync::Arc;

/// The congestion controller of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Congestion {
    /// quinn's CUBIC (RFC 9438): its first slow start ends with the first loss. The
    /// default, as in rust-libp2p.
    #[default]
    Cubic,
    /// quinn's BBR (experimental in quinn): keeps a path with random loss (1%) much
    /// faster than CUBIC does, but fills a long path with shallow buffers less.
    Bbr,
}

impl Congestion {
    /// The factory quinn builds each connection's controller with.
    pub(crate) fn factory(self) -> Arc<dyn ControllerFactory + Send + Sync> {
        match self {
            Congestion::Cubic => Arc::new(CubicConfig::default()),
            Congestion::Bbr => Arc::new(BbrConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_cubic() {
        assert_eq!(Congestion::default(), Congestion::Cubic);
        assert_eq!(crate::Config::default().congestion, Congestion::Cubic);
    }

    #[test]
    fn each_choice_builds_its_own_controller() {
        let now = std::time::Instant::now();
        let cubic = Congestion::Cubic.factory().build(now, 1200);
        assert!(cubic
            .into_any()
            .downcast::<quinn::congestion::Cubic>()
            .is_ok());
        let bbr = Congestion::Bbr.factory().build(now, 1200);
        assert!(bbr.into_any().downcast::<quinn::congestion::Bbr>().is_ok());
    }
}
