//! Configuration of an [`Upgrader`].

use crate::error::UpgradeError;
use crate::muxer::StreamMuxer;
use crate::security::SecurityUpgrade;
use crate::upgrader::{Settings, Upgrader};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The default overall timeout of one upgrade, all steps included.
pub const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds an [`Upgrader`]; start with [`Upgrader::builder`].
///
/// Defaults: timeout [`DEFAULT_UPGRADE_TIMEOUT`], inlined muxer negotiation on, lazy
/// proposals on, the default [`weft_mss::Config`].
pub struct UpgraderBuilder {
    security: Vec<Arc<dyn SecurityUpgrade>>,
    muxers: Vec<Arc<dyn StreamMuxer>>,
    timeout: Duration,
    inline_muxer_negotiation: bool,
    lazy: bool,
    mss_config: weft_mss::Config,
}

impl Default for UpgraderBuilder {
    fn default() -> Self {
        UpgraderBuilder {
            security: Vec::new(),
            muxers: Vec::new(),
            timeout: DEFAULT_UPGRADE_TIMEOUT,
            inline_muxer_negotiation: true,
            lazy: true,
            mss_config: weft_mss::Config::default(),
        }
    }
}

impl UpgraderBuilder {
    /// Adds a security protocol. Call once per protocol; the order of calls is the
    /// order of preference (the dialer proposes the first one first).
    pub fn security(mut self, security: Arc<dyn SecurityUpgrade>) -> Self {
        self.security.push(security);
        self
    }

    /// Adds a stream muxer. Call once per muxer; the order of calls is the order of
    /// preference.
    pub fn muxer(mut self, muxer: Arc<dyn StreamMuxer>) -> Self {
        self.muxers.push(muxer);
        self
    }

    /// Sets the overall timeout of one upgrade, all steps included (default 20 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether to offer our muxers inside the security handshake (Noise extensions,
    /// TLS ALPN), saving the round trip of a separate muxer negotiation when the
    /// remote supports it too (default `true`).
    pub fn inline_muxer_negotiation(mut self, inline: bool) -> Self {
        self.inline_muxer_negotiation = inline;
        self
    }

    /// Whether a dialer that offers a single choice (one security protocol, or one
    /// muxer) proposes it lazily: the handshake's first message leaves with the
    /// proposal instead of waiting for the echo (default `true`).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Sets the multistream-select bounds used by every negotiation of the upgrade.
    pub fn mss_config(mut self, config: weft_mss::Config) -> Self {
        self.mss_config = config;
        self
    }

    /// Checks the configuration and builds the upgrader.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::NoSecurity`] or [`UpgradeError::NoMuxer`] when a list is
    /// empty, [`UpgradeError::DuplicateProtocol`] when two entries of a list share a
    /// protocol id.
    // The error type is shared with the upgrade itself, whose handshake variant
    // carries two `PeerId`s; a build error is a one-off, so its size does not matter.
    #[allow(clippy::result_large_err)]
    pub fn build(self) -> Result<Upgrader, UpgradeError> {
        if self.security.is_empty() {
            return Err(UpgradeError::NoSecurity);
        }
        if self.muxers.is_empty() {
            return Err(UpgradeError::NoMuxer);
        }
        check_unique(self.security.iter().map(|s| s.protocol_id()))?;
        check_unique(self.muxers.iter().map(|m| m.protocol_id()))?;
        Ok(Upgrader::from_settings(Settings {
            security: self.security,
            muxers: self.muxers,
            timeout: self.timeout,
            inline_muxer_negotiation: self.inline_muxer_negotiation,
            lazy: self.lazy,
            mss_config: self.mss_config,
        }))
    }
}

#[allow(clippy::result_large_err)] // See `build`.
fn check_unique<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), UpgradeError> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(UpgradeError::DuplicateProtocol(id.to_owned()));
        }
    }
    Ok(())
}

impl std::fmt::Debug for UpgraderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgraderBuilder")
            .field(
                "security",
                &self
                    .security
                    .iter()
                    .map(|s| s.protocol_id())
                    .collect::<Vec<_>>(),
            )
            .field(
                "muxers",
                &self
                    .muxers
                    .iter()
                    .map(|m| m.protocol_id())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("inline_muxer_negotiation", &self.inline_muxer_negotiation)
            .field("lazy", &self.lazy)
            .finish_non_exhaustive()
    }
}
