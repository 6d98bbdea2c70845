//! The on-disk encoding of a peer record (protobuf via `prost`), decoded defensively.

use libp2p_identity::PublicKey;
use multiaddr::Multiaddr;

use crate::error::{PeerStoreError, Result};
use crate::record::{AddrEntry, PeerRecord};

/// Largest encoded record accepted when decoding (a record within the default limits is
/// far smaller; this only stops a damaged length from costing a huge allocation).
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// One stored address.
#[derive(Clone, PartialEq, prost::Message)]
struct AddrProto {
    /// The binary multiaddr.
    #[prost(bytes = "vec", tag = "1")]
    addr: Vec<u8>,
    /// Expiry, UNIX milliseconds (`u64::MAX`: never).
    #[prost(uint64, tag = "2")]
    expiry_ms: u64,
    /// The TTL it was stored with, milliseconds (reserved values for permanent, connected).
    #[prost(uint64, tag = "3")]
    ttl_ms: u64,
}

/// One metadata entry.
#[derive(Clone, PartialEq, prost::Message)]
struct MetadataProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// A peer record.
#[derive(Clone, PartialEq, prost::Message)]
struct RecordProto {
    #[prost(message, repeated, tag = "1")]
    addrs: Vec<AddrProto>,
    /// Protobuf-encoded libp2p `PublicKey`.
    #[prost(bytes = "vec", optional, tag = "2")]
    public_key: Option<Vec<u8>>,
    #[prost(string, repeated, tag = "3")]
    protocols: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    metadata: Vec<MetadataProto>,
    #[prost(double, optional, tag = "5")]
    latency_ns: Option<f64>,
    #[prost(uint64, tag = "6")]
    last_update_ms: u64,
}

/// Encodes a record.
pub(crate) fn encode(record: &PeerRecord) -> Vec<u8> {
    let proto = RecordProto {
        addrs: record
            .addrs
            .iter()
            .map(|a| AddrProto {
                addr: a.addr.to_vec(),
                expiry_ms: a.expiry_ms,
                ttl_ms: a.ttl_ms,
            })
            .collect(),
        public_key: record.public_key.as_ref().map(PublicKey::encode_protobuf),
        protocols: record.protocols.clone(),
        metadata: record
            .metadata
            .iter()
            .map(|(key, value)| MetadataProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        latency_ns: record.latency_ns,
        last_update_ms: record.last_update_ms,
    };
    prost::Message::encode_to_vec(&proto)
}

/// Decodes a record; anything malformed is [`PeerStoreError::Corrupt`].
pub(crate) fn decode(bytes: &[u8]) -> Result<PeerRecord> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(corrupt(format!("record of {} bytes", bytes.len())));
    }
    let proto: RecordProto =
        prost::Message::decode(bytes).map_err(|e| corrupt(format!("undecodable record: {e}")))?;
    let addrs = proto
        .addrs
        .into_iter()
        .map(|a| {
            let addr = Multiaddr::try_from(a.addr)
                .map_err(|e| corrupt(format!("bad multiaddr in record: {e}")))?;
            Ok(AddrEntry {
                addr,
                expiry_ms: a.expiry_ms,
                ttl_ms: a.ttl_ms,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let public_key = proto
        .public_key
        .map(|bytes| {
            PublicKey::try_decode_protobuf(&bytes)
                .map_err(|e| corrupt(format!("bad public key in record: {e}")))
        })
        .transpose()?;
    Ok(PeerRecord {
        addrs,
        public_key,
        protocols: proto.protocols,
        metadata: proto
            .metadata
            .into_iter()
            .map(|m| (m.key, m.value))
            .collect(),
        latency_ns: proto.latency_ns.filter(|ns| ns.is_finite() && *ns >= 0.0),
        last_update_ms: proto.last_update_ms,
    })
}

fn corrupt(message: String) -> PeerStoreError {
    PeerStoreError::Corrupt(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> PeerRecord {
        let key = libp2p_identity::Keypair::generate_ed25519().public();
        let mut record = PeerRecord {
            addrs: vec![AddrEntry {
                addr: "/ip4/1.2.3.4/tcp/1".parse().unwrap(),
                expiry_ms: 99,
                ttl_ms: 7,
            }],
            public_key: Some(key),
            protocols: vec!["/a".into(), "/b".into()],
            metadata: vec![("k".into(), vec![1, 2, 3])],
            latency_ns: None,
            last_update_ms: 42,
        };
        record.record_latency(Duration::from_millis(3));
        record
    }

    #[test]
    fn records_round_trip() {
        let record = sample();
        assert_eq!(decode(&encode(&record)).unwrap(), record);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            // Truncations either decode (at a field boundary) or fail cleanly.
            let _ = decode(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode(&flipped);
            flipped[i] ^= 0xff;
        }
        assert!(matches!(
            decode(&[0x0a, 0x05, 0x0a, 0x03, 0xff, 0xff, 0xff]),
            Err(PeerStoreError::Corrupt(_))
        ));
    }
}
