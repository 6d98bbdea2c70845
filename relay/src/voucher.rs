//! Reservation vouchers: a [signed envelope] (domain `libp2p-relay-rsvp`, payload type
//! multicodec `0x0302`) over `Voucher { relay, peer, expiration }`, signed by the relay.
//!
//! The spec says reservations *should* come with one and that they are advisory
//! for now: a relay of this crate always sends one, a client checks it when present
//! ([`verify`]) and proceeds without one.
//!
//! [signed envelope]: https://github.com/libp2p/specs/blob/master/RFC/0002-signed-envelopes.md

use crate::proto::{Envelope, Voucher};
use libp2p_identity::{Keypair, PeerId, PublicKey};
use prost::Message;

/// The signature domain of reservation vouchers.
pub const DOMAIN: &str = "libp2p-relay-rsvp";
/// The payload type: multicodec `0x0302` as its two bytes, as go-libp2p writes it
/// (`RecordCodec`) and as signed peer records carry `0x0301`; not a varint
/// (`[0x82, 0x06]` is refused by go-libp2p clients: "payload type is not registered").
pub const PAYLOAD_TYPE: [u8; 2] = [0x03, 0x02];

/// A voucher checked by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedVoucher {
    /// The relay that signed it.
    pub relay: PeerId,
    /// The peer it was issued to.
    pub peer: PeerId,
    /// When the reservation ends: UNIX time in seconds, UTC.
    pub expiration: u64,
}

/// Why a voucher was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoucherError {
    /// The envelope or the payload did not decode, or lacks a field.
    #[error("malformed voucher: {0}")]
    Malformed(&'static str),
    /// The payload type is not `0x0302`.
    #[error("the envelope's payload type is not a relay voucher")]
    WrongPayloadType,
    /// The signature does not verify.
    #[error("the voucher's signature does not verify")]
    BadSignature,
    /// Signed by another key than the relay it names.
    #[error("the voucher is not signed by the relay it names")]
    WrongSigner,
    /// It names another relay than the one we reserved with.
    #[error("the voucher names the relay {0}")]
    WrongRelay(PeerId),
    /// It was issued to another peer than us.
    #[error("the voucher was issued to {0}")]
    WrongPeer(PeerId),
    /// Signing failed.
    #[error("signing the voucher failed: {0}")]
    Signing(#[from] libp2p_identity::SigningError),
}

/// What the signature covers: each of domain, payload type and payload preceded by
/// its length as an unsigned varint.
fn signed_bytes(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + PAYLOAD_TYPE.len() + payload.len() + 8);
    for part in [DOMAIN.as_bytes(), &PAYLOAD_TYPE, payload] {
        let mut buf = unsigned_varint::encode::usize_buffer();
        out.extend_from_slice(unsigned_varint::encode::usize(part.len(), &mut buf));
        out.extend_from_slice(part);
    }
    out
}

/// Signs a voucher for `peer`'s reservation at the relay whose key is `relay_key`.
///
/// # Errors
///
/// [`VoucherError::Signing`] when the key cannot sign.
pub fn sign(relay_key: &Keypair, peer: PeerId, expiration: u64) -> Result<Vec<u8>, VoucherError> {
    let payload = Voucher {
        relay: Some(relay_key.public().to_peer_id().to_bytes()),
        peer: Some(peer.to_bytes()),
        expiration: Some(expiration),
    }
    .encode_to_vec();
    let signature = relay_key.sign(&signed_bytes(&payload))?;
    Ok(Envelope {
        public_key: Some(relay_key.public().encode_protobuf()),
        payload_type: Some(PAYLOAD_TYPE.to_vec()),
        payload: Some(payload),
        signature: Some(signature),
    }
    .encode_to_vec())
}

/// Checks a voucher: a valid envelope of the right type, signed by `relay`, issued to
/// `peer`.
///
/// # Errors
///
/// [`VoucherError`] naming what is wrong.
pub fn verify(bytes: &[u8], relay: PeerId, peer: PeerId) -> Result<VerifiedVoucher, VoucherError> {
    let envelope =
        Envelope::decode(bytes).map_err(|_| VoucherError::Malformed("envelope does not decode"))?;
    let key = envelope
        .public_key
        .ok_or(VoucherError::Malformed("no public key"))?;
    let key = PublicKey::try_decode_protobuf(&key)
        .map_err(|_| VoucherError::Malformed("public key does not decode"))?;
    if envelope.payload_type.as_deref() != Some(&PAYLOAD_TYPE[..]) {
        return Err(VoucherError::WrongPayloadType);
    }
    let payload = envelope.payload.unwrap_or_default();
    let signature = envelope.signature.unwrap_or_default();
    if !key.verify(&signed_bytes(&payload), &signature) {
        return Err(VoucherError::BadSignature);
    }
    let voucher = Voucher::decode(payload.as_slice())
        .map_err(|_| VoucherError::Malformed("payload does not decode"))?;
    let parse = |id: Option<Vec<u8>>, what: &'static str| {
        id.and_then(|b| PeerId::from_bytes(&b).ok())
            .ok_or(VoucherError::Malformed(what))
    };
    let named_relay = parse(voucher.relay, "no relay peer id")?;
    let named_peer = parse(voucher.peer, "no peer id")?;
    let expiration = voucher
        .expiration
        .ok_or(VoucherError::Malformed("no expiration"))?;
    if named_relay != key.to_peer_id() {
        return Err(VoucherError::WrongSigner);
    }
    if named_relay != relay {
        return Err(VoucherError::WrongRelay(named_relay));
    }
    if named_peer != peer {
        return Err(VoucherError::WrongPeer(named_peer));
    }
    Ok(VerifiedVoucher {
        relay: named_relay,
        peer: named_peer,
        expiration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_voucher_verifies_for_its_parties_only() {
        let relay = Keypair::generate_ed25519();
        let relay_id = relay.public().to_peer_id();
        let peer = PeerId::random();
        let bytes = sign(&relay, peer, 1_700_000_000).unwrap();
        let v = verify(&bytes, relay_id, peer).unwrap();
        assert_eq!(v.expiration, 1_700_000_000);
        assert_eq!((v.relay, v.peer), (relay_id, peer));
        assert!(matches!(
            verify(&bytes, relay_id, PeerId::random()),
            Err(VoucherError::WrongPeer(p)) if p == peer
        ));
        assert!(matches!(
            verify(&bytes, PeerId::random(), peer),
            Err(VoucherError::WrongRelay(r)) if r == relay_id
        ));
    }

    #[test]
    fn a_tampered_voucher_is_refused() {
        let relay = Keypair::generate_ed25519();
        let relay_id = relay.public().to_peer_id();
        let peer = PeerId::random();
        let mut envelope = Envelope::decode(sign(&relay, peer, 5).unwrap().as_slice()).unwrap();
        let mut payload = Voucher::decode(envelope.payload.as_deref().unwrap()).unwrap();
        payload.expiration = Some(6);
        envelope.payload = Some(payload.encode_to_vec());
        assert!(matches!(
            verify(&envelope.encode_to_vec(), relay_id, peer),
            Err(VoucherError::BadSignature)
        ));
        envelope.payload_type = Some(vec![0x03, 0x01]);
        assert!(matches!(
            verify(&envelope.encode_to_vec(), relay_id, peer),
            Err(VoucherError::WrongPayloadType)
        ));
        assert!(matches!(
            verify(b"\xff\xff", relay_id, peer),
            Err(VoucherError::Malformed(_))
        ));
    }

    #[test]
    fn the_signed_bytes_follow_rfc_0002() {
        let bytes = signed_bytes(b"xy");
        let mut expected = vec![17];
        expected.extend_from_slice(b"libp2p-relay-rsvp");
        expected.extend_from_slice(&[2, 0x03, 0x02, 2, b'x', b'y']);
        assert_eq!(bytes, expected);
    }
}
