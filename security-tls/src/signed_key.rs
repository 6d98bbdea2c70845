//! The DER codec of the libp2p certificate extension's `SignedKey` structure.
//!
//! ```asn1
//! SignedKey ::= SEQUENCE {
//!   publicKey OCTET STRING,   -- the host PublicKey protobuf
//!   signature OCTET STRING    -- host-key signature over "libp2p-tls-handshake:" || SPKI
//! }
//! ```
//!
//! The decoder is strict DER (definite, minimal lengths, no trailing bytes) and never
//! panics: it is fed bytes a peer controls, and is fuzzed (`fuzz/`).

use crate::error::TlsError;

/// The DER tag of a SEQUENCE (constructed).
const TAG_SEQUENCE: u8 = 0x30;
/// The DER tag of an OCTET STRING (primitive).
const TAG_OCTET_STRING: u8 = 0x04;

/// The two fields of a decoded `SignedKey`, borrowed from the extension bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedKey<'a> {
    /// The host `PublicKey` protobuf bytes.
    pub public_key: &'a [u8],
    /// The host-key signature over `"libp2p-tls-handshake:"` ‖ the certificate SPKI.
    pub signature: &'a [u8],
}

impl<'a> SignedKey<'a> {
    /// Decodes the DER value of the libp2p extension (the extension's `extnValue`
    /// contents).
    pub fn decode(der: &'a [u8]) -> Result<Self, TlsError> {
        let (sequence, rest) = read_tlv(der, TAG_SEQUENCE)?;
        if !rest.is_empty() {
            return Err(TlsError::MalformedExtension(
                "trailing bytes after SignedKey",
            ));
        }
        let (public_key, rest) = read_tlv(sequence, TAG_OCTET_STRING)?;
        let (signature, rest) = read_tlv(rest, TAG_OCTET_STRING)?;
        if !rest.is_empty() {
            return Err(TlsError::MalformedExtension("extra fields in SignedKey"));
        }
        Ok(SignedKey {
            public_key,
            signature,
        })
    }

    /// Encodes this value as DER.
    pub fn encode(&self) -> Vec<u8> {
        let mut body =
            Vec::with_capacity(self.public_key.len() + self.signature.len() + 2 * MAX_HEADER);
        write_tlv(&mut body, TAG_OCTET_STRING, self.public_key);
        write_tlv(&mut body, TAG_OCTET_STRING, self.signature);
        let mut out = Vec::with_capacity(body.len() + MAX_HEADER);
        write_tlv(&mut out, TAG_SEQUENCE, &body);
        out
    }
}

/// The longest tag + length header [`write_tlv`] produces (tag, 0x84, 4 length bytes).
const MAX_HEADER: usize = 6;

/// Reads one tag-length-value with the given tag; returns (value, rest).
fn read_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), TlsError> {
    let (&found, rest) = input
        .split_first()
        .ok_or(TlsError::MalformedExtension("truncated: missing tag"))?;
    if found != tag {
        return Err(TlsError::MalformedExtension("unexpected DER tag"));
    }
    let (&first, mut rest) = rest
        .split_first()
        .ok_or(TlsError::MalformedExtension("truncated: missing length"))?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        // 0x80 is the BER indefinite form; more than 4 length bytes is never needed here.
        if count == 0 || count > 4 {
            return Err(TlsError::MalformedExtension("unsupported DER length form"));
        }
        let bytes = rest
            .get(..count)
            .ok_or(TlsError::MalformedExtension("truncated: length bytes"))?;
        rest = rest
            .get(count..)
            .ok_or(TlsError::MalformedExtension("truncated: length bytes"))?;
        if bytes.first() == Some(&0) {
            return Err(TlsError::MalformedExtension("non-minimal DER length"));
        }
        let length = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if length < 0x80 {
            return Err(TlsError::MalformedExtension("non-minimal DER length"));
        }
        length
    };
    let value = rest.get(..length).ok_or(TlsError::MalformedExtension(
        "truncated: value shorter than its length",
    ))?;
    let rest = rest.get(length..).ok_or(TlsError::MalformedExtension(
        "truncated: value shorter than its length",
    ))?;
    Ok((value, rest))
}

/// Appends one DER tag-length-value.
fn write_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        // Fits in the short form: the cast cannot truncate.
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_short_and_long_lengths() {
        for (pk_len, sig_len) in [(0, 0), (36, 64), (127, 128), (300, 70000)] {
            let pk = vec![0xab; pk_len];
            let sig = vec![0xcd; sig_len];
            let encoded = SignedKey {
                public_key: &pk,
                signature: &sig,
            }
            .encode();
            let decoded = SignedKey::decode(&encoded).expect("decodes");
            assert_eq!(decoded.public_key, &pk[..]);
            assert_eq!(decoded.signature, &sig[..]);
        }
    }

    #[test]
    fn rejects_malformed_der() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x80, 0x00, 0x00],       // indefinite length
            &[0x30, 0x81, 0x05, 0x04, 0x00], // non-minimal long form
            &[0x30, 0x02, 0x04, 0x00],       // one field only
            &[0x30, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00], // trailing byte after sequence
            &[0x30, 0x06, 0x04, 0x00, 0x04, 0x00, 0x04, 0x00], // three fields
            &[0x31, 0x04, 0x04, 0x00, 0x04, 0x00], // SET, not SEQUENCE
            &[0x30, 0x04, 0x03, 0x00, 0x04, 0x00], // BIT STRING field
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], // length beyond the input
        ];
        for case in cases {
            assert!(
                matches!(
                    SignedKey::decode(case),
                    Err(TlsError::MalformedExtension(_))
                ),
                "accepted {case:02x?}"
            );
        }
        let ok = SignedKey::decode(&[0x30, 0x04, 0x04, 0x00, 0x04, 0x00]).expect("valid");
        assert!(ok.public_key.is_empty() && ok.signature.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random bytes never panic the decoder, and whatever it accepts re-encodes
        /// to exactly the same bytes (DER is canonical).
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(decoded) = SignedKey::decode(&bytes) {
                prop_assert_eq!(decoded.encode(), bytes);
            }
        }

        /// Random bytes behind a valid-looking prefix reach the inner parsing paths.
        #[test]
        fn prefixed_random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = vec![0x30, 0x81, tail.len().min(255) as u8, 0x04];
            bytes.extend_from_slice(&tail);
            let _ = SignedKey::decode(&bytes);
        }

        /// Encoding then decoding any pair of fields gives them back.
        #[test]
        fn encode_decode_round_trip(pk in proptest::collection::vec(any::<u8>(), 0..600),
                                    sig in proptest::collection::vec(any::<u8>(), 0..600)) {
            let encoded = SignedKey { public_key: &pk, signature: &sig }.encode();
            let decoded = SignedKey::decode(&encoded).expect("own encoding decodes");
            prop_assert_eq!(decoded.public_key, &pk[..]);
            prop_assert_eq!(decoded.signature, &sig[..]);
        }
    }
}
