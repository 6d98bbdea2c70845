//! An X25519 [`Dh`] that knows our static public key, so building a handshake
//! state does not derive it again.
//!
//! `snow::Builder::local_private_key` hands the private key to the resolver's DH,
//! whose `set` recomputes the public key: one fixed-base scalar multiplication per
//! handshake for a key that never changes. [`StaticKeyResolver`] wraps the backend
//! resolver and returns a DH that takes the public key from the cache when `set`
//! receives our static private key. Everything else (ephemeral keys, the DH
//! itself, hashes, ciphers, the RNG) is unchanged X25519 / the backend's.

use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::Arc;

/// Length of an X25519 key, private or public.
const KEY_LEN: usize = 32;

/// Our static X25519 keypair, with its public key already derived.
#[derive(Clone)]
pub(crate) struct StaticKey {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl StaticKey {
    /// The cache for `private`; `None` unless both keys are X25519-sized.
    pub(crate) fn new(private: &[u8], public: &[u8]) -> Option<Self> {
        Some(StaticKey {
            private: private.try_into().ok()?,
            public: public.try_into().ok()?,
        })
    }

    /// Whether `private` is our static private key (compared in constant time).
    fn is(&self, private: &[u8; KEY_LEN]) -> bool {
        self.private
            .iter()
            .zip(private)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl Drop for StaticKey {
    fn drop(&mut self) {
        self.private.fill(0);
    }
}

/// The backend resolver, with X25519 served by [`CachedX25519`].
pub(crate) struct StaticKeyResolver {
    inner: BoxedCryptoResolver,
    key: Arc<StaticKey>,
}

impl StaticKeyResolver {
    /// Wraps `inner`, reusing `key`'s public half.
    pub(crate) fn new(inner: BoxedCryptoResolver, key: Arc<StaticKey>) -> Self {
        StaticKeyResolver { inner, key }
    }
}

impl CryptoResolver for StaticKeyResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        self.inner.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(CachedX25519 {
                key: self.key.clone(),
                private: [0; KEY_LEN],
                public: [0; KEY_LEN],
            })),
            _ => self.inner.resolve_dh(choice),
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        self.inner.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        self.inner.resolve_cipher(choice)
    }
}

/// X25519 keypair slot for a handshake (static or ephemeral).
struct CachedX25519 {
    key: Arc<StaticKey>,
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl CachedX25519 {
    fn derive_public(&mut self) {
        self.public = MontgomeryPoint::mul_base_clamped(self.private).to_bytes();
    }
}

impl Drop for CachedX25519 {
    fn drop(&mut self) {
        self.private.fill(0);
    }
}

impl Dh for CachedX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        // snow only calls this with `priv_len()` bytes; anything else leaves a zero
        // key that every peer would reject, never a panic.
        self.private = privkey.try_into().unwrap_or([0; KEY_LEN]);
        if self.key.is(&self.private) {
            self.public = self.key.public;
        } else {
            self.derive_public();
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        rng.try_fill_bytes(&mut self.private)?;
        self.derive_public();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let remote: [u8; KEY_LEN] = pubkey
            .get(..KEY_LEN)
            .and_then(|key| key.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        let shared = MontgomeryPoint(remote).mul_clamped(self.private).to_bytes();
        out.get_mut(..KEY_LEN)
            .ok_or(snow::Error::Dh)?
            .copy_from_slice(&shared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow::resolvers::DefaultResolver;

    fn resolver() -> (StaticKeyResolver, snow::Keypair) {
        let params = crate::config::noise_params().unwrap();
        let keypair = snow::Builder::new(params).generate_keypair().unwrap();
        let key = StaticKey::new(&keypair.private, &keypair.public).unwrap();
        (
            StaticKeyResolver::new(Box::new(DefaultResolver), Arc::new(key)),
            keypair,
        )
    }

    #[test]
    fn cached_static_key_matches_derived_and_dh_matches_default() {
        let (resolver, keypair) = resolver();
        let mut dh = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        dh.set(&keypair.private);
        assert_eq!(dh.pubkey(), keypair.public.as_slice());

        let mut reference = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        let mut other = [7u8; KEY_LEN];
        other[0] = 9;
        reference.set(&other);
        let mut ours = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        ours.set(&other);
        assert_eq!(ours.pubkey(), reference.pubkey(), "uncached key derived");

        let (mut a, mut b) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
        dh.dh(reference.pubkey(), &mut a).unwrap();
        reference.dh(&keypair.public, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(dh.dh(&[1, 2, 3], &mut a).is_err());
    }
}
