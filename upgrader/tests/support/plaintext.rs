//! `/plaintext/2.0.0` (specs/plaintext.md): exchange of peer ids and keys, no
//! encryption. For tests only.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId, PublicKey};
use prost::Message;
use std::time::Duration;
use weft_upgrader::{BoxedIo, SecuredConnection, SecurityError, SecurityUpgrade};

/// The largest `Exchange` message we read.
const MAX_EXCHANGE_LEN: u64 = 4096;

/// The `Exchange` protobuf. `pubkey` is the embedded `PublicKey` message, kept as
/// its encoded bytes (the same wire form as a nested message).
#[derive(Clone, PartialEq, prost::Message)]
struct Exchange {
    #[prost(bytes = "vec", optional, tag = "1")]
    id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pubkey: Option<Vec<u8>>,
}

/// The plaintext "security" protocol, under a configurable protocol id so tests can
/// build several distinct protocols.
pub struct Plaintext {
    keypair: Keypair,
    protocol_id: String,
    check_expected: bool,
}

impl Plaintext {
    pub fn new(keypair: Keypair) -> Self {
        Self::with_id(keypair, "/plaintext/2.0.0")
    }

    pub fn with_id(keypair: Keypair, protocol_id: &str) -> Self {
        Plaintext {
            keypair,
            protocol_id: protocol_id.to_owned(),
            check_expected: true,
        }
    }

    /// A broken variant that does not check the expected peer, to show that the
    /// conformance suite catches it.
    pub fn careless(keypair: Keypair) -> Self {
        Plaintext {
            check_expected: false,
            ..Self::new(keypair)
        }
    }

    async fn exchange(&self, mut io: BoxedIo) -> Result<SecuredConnection, SecurityError> {
        let public = self.keypair.public();
        let ours = Exchange {
            id: Some(public.to_peer_id().to_bytes()),
            pubkey: Some(public.encode_protobuf()),
        };
        let mut frame = Vec::new();
        let mut len = unsigned_varint_encode(ours.encoded_len() as u64);
        frame.append(&mut len);
        ours.encode(&mut frame).map_err(protocol)?;
        io.write_all(&frame).await?;
        io.flush().await?;

        let len = read_varint(&mut io).await?;
        if len > MAX_EXCHANGE_LEN {
            return Err(protocol(format!("Exchange of {len} bytes is too long")));
        }
        let mut buf = vec![0; len as usize];
        io.read_exact(&mut buf).await?;
        let theirs = Exchange::decode(buf.as_slice()).map_err(protocol)?;
        let key = theirs
            .pubkey
            .ok_or_else(|| protocol("Exchange without a public key"))?;
        let key = PublicKey::try_decode_protobuf(&key).map_err(protocol)?;
        let id = theirs
            .id
            .ok_or_else(|| protocol("Exchange without an id"))?;
        let id = PeerId::from_bytes(&id).map_err(protocol)?;
        if id != key.to_peer_id() {
            return Err(SecurityError::Authentication(
                "the peer id does not match the public key".into(),
            ));
        }
        Ok(SecuredConnection {
            remote_peer: id,
            remote_public_key: key,
            io,
            muxer: None,
        })
    }

    async fn with_timeout(&self, io: BoxedIo) -> Result<SecuredConnection, SecurityError> {
        let limit = Duration::from_secs(10);
        tokio::time::timeout(limit, self.exchange(io))
            .await
            .map_err(|_| SecurityError::Timeout(limit))?
    }
}

fn protocol(error: impl ToString) -> SecurityError {
    SecurityError::Protocol(error.to_string().into())
}

fn unsigned_varint_encode(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a minimal unsigned varint of at most 9 bytes, one byte at a time so
/// nothing past it is consumed.
async fn read_varint(io: &mut BoxedIo) -> Result<u64, SecurityError> {
    let mut value = 0u64;
    for i in 0..9 {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if byte[0] == 0 && i > 0 {
                return Err(protocol("non-minimal varint"));
            }
            return Ok(value);
        }
    }
    Err(protocol("varint longer than 9 bytes"))
}

#[async_trait::async_trait]
impl SecurityUpgrade for Plaintext {
    fn protocol_id(&self) -> &str {
        &self.protocol_id
    }

    async fn secure_outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        _muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        let secured = self.with_timeout(io).await?;
        match expected {
            Some(expected) if self.check_expected && expected != secured.remote_peer => {
                Err(SecurityError::PeerIdMismatch {
                    expected,
                    actual: secured.remote_peer,
                })
            }
            _ => Ok(secured),
        }
    }

    async fn secure_inbound(
        &self,
        io: BoxedIo,
        _muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.with_timeout(io).await
    }
}
