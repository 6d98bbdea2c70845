//! A `/plaintext/2.0.0` security protocol (testing only, no encryption), written here
//! outside the weft crates to show that a third-party security protocol plugs into
//! the host through the public `SecurityUpgrade` trait alone.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId, PublicKey};
use prost::Message;
use weft_upgrader::{BoxedIo, SecuredConnection, SecurityError, SecurityUpgrade};

/// The Exchange message of the plaintext spec. `pubkey` is an embedded `PublicKey`
/// message, which on the wire is the same as its encoded bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct Exchange {
    #[prost(bytes = "vec", optional, tag = "1")]
    id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pubkey: Option<Vec<u8>>,
}

const MAX_EXCHANGE_LEN: usize = 4096;

/// `/plaintext/2.0.0`.
pub struct Plaintext {
    keypair: Keypair,
}

impl Plaintext {
    /// For this identity.
    pub fn new(keypair: &Keypair) -> Self {
        Plaintext {
            keypair: keypair.clone(),
        }
    }

    async fn exchange(
        &self,
        mut io: BoxedIo,
        expected: Option<PeerId>,
    ) -> Result<SecuredConnection, SecurityError> {
        let ours = Exchange {
            id: Some(self.keypair.public().to_peer_id().to_bytes()),
            pubkey: Some(self.keypair.public().encode_protobuf()),
        };
        io.write_all(&ours.encode_length_delimited_to_vec()).await?;
        io.flush().await?;
        // Read the length prefix byte by byte (bounded), then the message.
        let mut prefix = Vec::new();
        loop {
            let mut b = [0u8; 1];
            io.read_exact(&mut b).await?;
            prefix.push(b[0]);
            if b[0] & 0x80 == 0 {
                break;
            }
            if prefix.len() > 3 {
                return Err(SecurityError::Protocol("length prefix too long".into()));
            }
        }
        let (len, _) = unsigned_varint::decode::usize(&prefix)
            .map_err(|e| SecurityError::Protocol(Box::new(e)))?;
        if len > MAX_EXCHANGE_LEN {
            return Err(SecurityError::Protocol("exchange message too large".into()));
        }
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        let theirs =
            Exchange::decode(buf.as_slice()).map_err(|e| SecurityError::Protocol(Box::new(e)))?;
        let key = PublicKey::try_decode_protobuf(theirs.pubkey.as_deref().unwrap_or_default())
            .map_err(|e| SecurityError::Authentication(Box::new(e)))?;
        let peer = key.to_peer_id();
        let claimed = PeerId::from_bytes(theirs.id.as_deref().unwrap_or_default())
            .map_err(|e| SecurityError::Authentication(Box::new(e)))?;
        if claimed != peer {
            return Err(SecurityError::Authentication(
                "id does not match the key".into(),
            ));
        }
        if let Some(expected) = expected.filter(|e| *e != peer) {
            return Err(SecurityError::PeerIdMismatch {
                expected,
                actual: peer,
            });
        }
        Ok(SecuredConnection {
            remote_peer: peer,
            remote_public_key: key,
            io,
            muxer: None,
        })
    }
}

#[async_trait::async_trait]
impl SecurityUpgrade for Plaintext {
    fn protocol_id(&self) -> &str {
        "/plaintext/2.0.0"
    }

    async fn secure_outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        _muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.exchange(io, expected).await
    }

    async fn secure_inbound(
        &self,
        io: BoxedIo,
        _muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.exchange(io, None).await
    }
}
