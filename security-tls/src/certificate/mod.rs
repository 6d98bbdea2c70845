//! The libp2p certificate: generating ours, parsing and verifying the peer's.

mod generate;
mod parse;
mod scheme;

pub use generate::{generate_certificate, GeneratedCertificate};
pub use parse::Libp2pCertificate;

/// The OID of the libp2p public key extension, 1.3.6.1.4.1.53594.1.1.
pub const LIBP2P_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 53594, 1, 1];

/// The prefix of the message the host key signs: `"libp2p-tls-handshake:"` ‖ SPKI.
pub const SIGNATURE_PREFIX: &[u8] = b"libp2p-tls-handshake:";

/// The message the host key signs for a certificate key with this DER SPKI.
pub(crate) fn signed_message(spki_der: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_PREFIX.len() + spki_der.len());
    message.extend_from_slice(SIGNATURE_PREFIX);
    message.extend_from_slice(spki_der);
    message
}
