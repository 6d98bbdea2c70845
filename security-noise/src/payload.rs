//! The libp2p handshake payload carried in Noise messages 2 and 3.
//!
//! ```protobuf
//! syntax = "proto2";
//! message NoiseExtensions {
//!     repeated bytes webtransport_certhashes = 1;
//!     repeated string stream_muxers = 2;
//! }
//! message NoiseHandshakePayload {
//!   optional bytes identity_key = 1;
//!   optional bytes identity_sig = 2;
//!   optional NoiseExtensions extensions = 4;
//! }
//! ```
//!
//! Unknown fields are skipped, as protobuf requires.

use crate::error::NoiseError;
use prost::Message;

/// The prefix of the data an identity key signs to vouch for a Noise static key.
pub const STATIC_KEY_SIGNATURE_PREFIX: &[u8] = b"noise-libp2p-static-key:";

/// The `NoiseExtensions` protobuf message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NoiseExtensions {
    /// WebTransport certificate hashes (multihashes), field 1.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub webtransport_certhashes: Vec<Vec<u8>>,
    /// Stream muxer protocol ids for inlined muxer negotiation, field 2.
    #[prost(string, repeated, tag = "2")]
    pub stream_muxers: Vec<String>,
}

/// The `NoiseHandshakePayload` protobuf message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NoiseHandshakePayload {
    /// The sender's serialized libp2p `PublicKey`, field 1.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity_key: Option<Vec<u8>>,
    /// The identity signature over the static key, field 2.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub identity_sig: Option<Vec<u8>>,
    /// The extensions, field 4.
    #[prost(message, optional, tag = "4")]
    pub extensions: Option<NoiseExtensions>,
}

/// Decodes a decrypted handshake payload. Never panics, whatever the bytes.
pub fn decode_payload(bytes: &[u8]) -> Result<NoiseHandshakePayload, NoiseError> {
    Ok(NoiseHandshakePayload::decode(bytes)?)
}

/// The data an identity key signs for the given Noise static public key.
pub fn static_key_signing_data(static_key: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(STATIC_KEY_SIGNATURE_PREFIX.len() + static_key.len());
    data.extend_from_slice(STATIC_KEY_SIGNATURE_PREFIX);
    data.extend_from_slice(static_key);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_uses_the_spec_field_numbers() {
        let payload = NoiseHandshakePayload {
            identity_key: Some(vec![1, 2]),
            identity_sig: Some(vec![3]),
            extensions: Some(NoiseExtensions {
                webtransport_certhashes: vec![],
                stream_muxers: vec!["/yamux/1.0.0".into()],
            }),
        };
        let bytes = payload.encode_to_vec();
        // field 1 (bytes) = 0x0a, field 2 = 0x12, field 4 (message) = 0x22
        assert_eq!(&bytes[..4], &[0x0a, 2, 1, 2]);
        assert_eq!(&bytes[4..7], &[0x12, 1, 3]);
        assert_eq!(bytes[7], 0x22);
        assert_eq!(bytes[9], 0x12, "stream_muxers is field 2 of the extensions");
        assert_eq!(decode_payload(&bytes).expect("decodes"), payload);
    }

    #[test]
    fn skips_unknown_fields() {
        // field 3 (unused, varint 7) and field 99 (bytes) before identity_key.
        let mut bytes = vec![0x18, 7, 0x9a, 0x06, 1, 0xff];
        bytes.extend_from_slice(&[0x0a, 1, 9]);
        let payload = decode_payload(&bytes).expect("decodes");
        assert_eq!(payload.identity_key, Some(vec![9]));
    }

    #[test]
    fn rejects_truncated_input() {
        assert!(matches!(
            decode_payload(&[0x0a, 5, 1]),
            Err(NoiseError::PayloadDecode(_))
        ));
    }
}
