//! The certificate of one identity, rotated inside long-lived rustls configurations.
//!
//! rustls resumes a session only with the very certificate resolver (and verifier)
//! objects of the original handshake, so a transport that resumes sessions keeps one
//! configuration per identity for its whole life ([`SharedTlsConfigs`]). Rotating the
//! certificate therefore happens inside the resolver: [`RotatingCertificate`] is the
//! client's and the server's resolver at once, holds the current certificate, and
//! swaps in a freshly generated one (a new throw-away P-256 key, the libp2p extension
//! signed by the same identity key) once the current one is older than its rotation
//! interval. The check runs in the handshake that asks for the certificate, so no
//! timer is needed; a generation that fails keeps the current certificate (logged)
//! and is tried again at the next handshake.
//!
//! A generated certificate is valid for 100 years from its generation (see
//! [`generate_certificate`]), so a rotation never races an expiry: it bounds how long
//! one certificate key is in use. Sessions resumed across a rotation still prove the
//! peer: they carry the certificate of their original handshake, which holds the
//! same identity key.
//!
//! [`SharedTlsConfigs`]: crate::SharedTlsConfigs

use crate::certificate::generate_certificate;
use crate::error::TlsError;
use libp2p_identity::Keypair;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A freshly generated certificate of `identity` with its signing key loaded by
/// `provider`.
pub(crate) fn certified_key(
    identity: &Keypair,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let generated = generate_certificate(identity)?;
    let key = provider
        .key_provider
        .load_private_key(generated.private_key)
        .map_err(|e| TlsError::CertificateGeneration(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![generated.certificate],
        key,
    )))
}

/// The certificate of one identity for every handshake of long-lived rustls
/// configurations, replaced by a fresh one (same identity key) once it is older than
/// the rotation interval.
///
/// It resolves both the server's certificate ([`ResolvesServerCert`]) and the
/// client's ([`ResolvesClientCert`]).
pub struct RotatingCertificate {
    identity: Keypair,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    /// The current certificate and when it was made.
    current: Mutex<(Instant, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for RotatingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingCertificate")
            .field("peer_id", &self.identity.public().to_peer_id())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl RotatingCertificate {
    /// Generates the first certificate of `identity` (its key loaded by `provider`);
    /// later ones replace it every `interval` (`Duration::ZERO`: a fresh certificate
    /// for every handshake).
    ///
    /// # Errors
    ///
    /// [`TlsError::CertificateGeneration`]: a local failure.
    pub fn new(
        identity: &Keypair,
        provider: Arc<CryptoProvider>,
        interval: Duration,
    ) -> Result<Self, TlsError> {
        let first = certified_key(identity, &provider)?;
        Ok(RotatingCertificate {
            identity: identity.clone(),
            provider,
            interval,
            current: Mutex::new((Instant::now(), first)),
        })
    }

    /// How long one certificate is used.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The certificate the next handshake presents (the leaf of its chain), without
    /// rotating it.
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.lock().1.cert[0].clone()
    }

    /// Replaces the certificate by a freshly generated one now, whatever its age.
    ///
    /// # Errors
    ///
    /// [`TlsError::CertificateGeneration`]: the current certificate stays.
    pub fn rotate(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.identity, &self.provider)?;
        *self.lock() = (Instant::now(), fresh);
        tracing::debug!("TLS certificate rotated");
        Ok(())
    }

    /// The certificate for a handshake starting now: the current one, or a fresh one
    /// in its place if it is older than the interval (the current one if that fails).
    fn for_handshake(&self) -> Arc<CertifiedKey> {
        let mut current = self.lock();
        if current.0.elapsed() >= self.interval {
            match certified_key(&self.identity, &self.provider) {
                Ok(fresh) => {
                    *current = (Instant::now(), fresh);
                    tracing::debug!(interval = ?self.interval, "TLS certificate rotated");
                }
                Err(error) => {
                    tracing::warn!(%error, "TLS certificate rotation failed; the current certificate stays");
                }
            }
        }
        current.1.clone()
    }

    /// The current certificate (a poisoned lock still holds a usable one).
    fn lock(&self) -> MutexGuard<'_, (Instant, Arc<CertifiedKey>)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ResolvesServerCert for RotatingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_handshake())
    }
}

impl ResolvesClientCert for RotatingCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.for_handshake())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::Libp2pCertificate;

    fn leaf(key: &CertifiedKey) -> CertificateDer<'static> {
        key.cert[0].clone()
    }

    #[test]
    fn a_certificate_is_kept_for_its_interval_then_replaced_with_the_same_identity() {
        let identity = Keypair::generate_ed25519();
        let provider = crate::default_crypto_provider();
        let kept = RotatingCertificate::new(&identity, provider.clone(), Duration::from_secs(3600))
            .expect("generates");
        let first = kept.certificate();
        assert_eq!(leaf(&kept.for_handshake()), first, "within its interval");
        assert_eq!(leaf(&kept.for_handshake()), first);

        let every =
            RotatingCertificate::new(&identity, provider, Duration::ZERO).expect("generates");
        let a = leaf(&every.for_handshake());
        let b = leaf(&every.for_handshake());
        assert_ne!(a, b, "a fresh certificate once the interval has passed");
        for certificate in [&a, &b] {
            let parsed = Libp2pCertificate::parse(certificate).expect("a libp2p certificate");
            assert_eq!(parsed.public_key(), &identity.public(), "the same identity");
        }
    }

    #[test]
    fn rotate_replaces_the_certificate_at_once() {
        let identity = Keypair::generate_ed25519();
        let rotating = RotatingCertificate::new(
            &identity,
            crate::default_crypto_provider(),
            Duration::from_secs(3600),
        )
        .expect("generates");
        let before = rotating.certificate();
        rotating.rotate().expect("rotates");
        let after = rotating.certificate();
        assert_ne!(before, after);
        assert_eq!(leaf(&rotating.for_handshake()), after);
    }
}
