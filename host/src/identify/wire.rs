//! The identify wire format: the protobuf, its framing, and the bounds we read with.
//!
//! Framing follows the deployed implementations: each message is an unsigned-varint
//! length followed by the protobuf. A reader accepts up to [`MAX_MESSAGES`] messages
//! of at most [`MAX_MESSAGE_LEN`] bytes each until EOF and merges them (go-libp2p may
//! split a large message in two).

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use multiaddr::Multiaddr;
use prost::Message;

/// The largest identify message we read.
pub(crate) const MAX_MESSAGE_LEN: usize = 8 * 1024;
/// The most messages we merge from one stream.
pub(crate) const MAX_MESSAGES: usize = 10;
/// The largest message we send (rust-libp2p reads at most 4096 bytes).
pub(crate) const MAX_SEND_LEN: usize = 4096;

/// The identify protobuf (field numbers per the spec, plus `signedPeerRecord = 8`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct IdentifyMessage {
    /// The protocol version, e.g. `ipfs/0.1.0`.
    #[prost(string, optional, tag = "5")]
    pub protocol_version: Option<String>,
    /// The agent version, e.g. `weft/0.1.0`.
    #[prost(string, optional, tag = "6")]
    pub agent_version: Option<String>,
    /// The sender's public key (protobuf-encoded `PublicKey`).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key: Option<Vec<u8>>,
    /// The sender's listen addresses (binary multiaddrs).
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub listen_addrs: Vec<Vec<u8>>,
    /// The address the sender sees the receiver at.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub observed_addr: Option<Vec<u8>>,
    /// The protocols the sender accepts.
    #[prost(string, repeated, tag = "3")]
    pub protocols: Vec<String>,
    /// A signed peer record envelope (kept opaque).
    #[prost(bytes = "vec", optional, tag = "8")]
    pub signed_peer_record: Option<Vec<u8>>,
}

/// Why identify failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum IdentifyError {
    /// The stream failed.
    #[error("i/o error during identify: {0}")]
    Io(#[from] std::io::Error),
    /// A message length prefix was malformed.
    #[error("malformed length prefix: {0}")]
    Varint(String),
    /// A message was larger than we accept.
    #[error("identify message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(usize),
    /// A message did not decode.
    #[error("malformed identify message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The remote sent no message at all.
    #[error("the remote closed the identify stream without a message")]
    Empty,
}

/// What we learned from a peer's identify message, decoded and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct IdentifyInfo {
    /// The protocol version, if sent.
    pub protocol_version: Option<String>,
    /// The agent version, if sent.
    pub agent_version: Option<String>,
    /// The public key, if sent and decodable.
    pub public_key: Option<libp2p_identity::PublicKey>,
    /// Listen addresses that decoded (others are skipped).
    pub listen_addrs: Vec<Multiaddr>,
    /// Where the peer sees us.
    pub observed_addr: Option<Multiaddr>,
    /// The protocols (None when a push left the field out).
    pub protocols: Vec<String>,
}

impl IdentifyInfo {
    /// Decodes the fields of a message, skipping malformed addresses.
    pub(crate) fn from_message(msg: &IdentifyMessage) -> Self {
        IdentifyInfo {
            protocol_version: msg.protocol_version.clone(),
            agent_version: msg.agent_version.clone(),
            public_key: msg
                .public_key
                .as_deref()
                .and_then(|b| libp2p_identity::PublicKey::try_decode_protobuf(b).ok()),
            listen_addrs: msg
                .listen_addrs
                .iter()
                .filter_map(|b| Multiaddr::try_from(b.clone()).ok())
                .collect(),
            observed_addr: msg
                .observed_addr
                .as_ref()
                .and_then(|b| Multiaddr::try_from(b.clone()).ok()),
            protocols: msg.protocols.clone(),
        }
    }
}

/// Builds the message, dropping listen addresses until it fits [`MAX_SEND_LEN`].
pub(crate) fn build_message(
    public_key: &libp2p_identity::PublicKey,
    protocol_version: &str,
    agent_version: &str,
    listen_addrs: &[Multiaddr],
    observed: Option<&Multiaddr>,
    protocols: Vec<String>,
) -> IdentifyMessage {
    let mut msg = IdentifyMessage {
        protocol_version: Some(protocol_version.to_string()),
        agent_version: Some(agent_version.to_string()),
        public_key: Some(public_key.encode_protobuf()),
        listen_addrs: listen_addrs.iter().map(|a| a.to_vec()).collect(),
        observed_addr: observed.map(|a| a.to_vec()),
        protocols,
        signed_peer_record: None,
    };
    while msg.encoded_len() > MAX_SEND_LEN && msg.listen_addrs.pop().is_some() {}
    msg
}

/// Writes one length-prefixed message, then closes our side of the stream.
pub(crate) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &IdentifyMessage,
) -> Result<(), IdentifyError> {
    let buf = msg.encode_length_delimited_to_vec();
    stream.write_all(&buf).await?;
    stream.close().await?;
    Ok(())
}

async fn read_varint<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<usize>, IdentifyError> {
    let mut buf = [0u8; 10];
    for i in 0..buf.len() {
        let mut byte = [0u8; 1];
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(IdentifyError::Varint(
                    "stream ended inside a length prefix".into(),
                ))
            };
        }
        buf[i] = byte[0];
        if byte[0] & 0x80 == 0 {
            let (len, _) = unsigned_varint::decode::usize(&buf[..=i])
                .map_err(|e| IdentifyError::Varint(e.to_string()))?;
            return Ok(Some(len));
        }
    }
    Err(IdentifyError::Varint("length prefix too long".into()))
}

/// Reads messages until EOF (at most [`MAX_MESSAGES`], each bounded) and merges them:
/// later scalar fields win, repeated fields are appended.
pub(crate) async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<IdentifyMessage, IdentifyError> {
    let mut merged = IdentifyMessage::default();
    let mut count = 0;
    while count < MAX_MESSAGES {
        let Some(len) = read_varint(stream).await? else {
            break;
        };
        if len > MAX_MESSAGE_LEN {
            return Err(IdentifyError::TooLarge(len));
        }
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        merged.merge(buf.as_slice())?;
        count += 1;
    }
    if count == 0 {
        return Err(IdentifyError::Empty);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn round_trips_and_merges_two_messages() {
        let key = libp2p_identity::Keypair::generate_ed25519();
        let addr: Multiaddr = "/ip4/1.2.3.4/tcp/5".parse().unwrap();
        let a = build_message(
            &key.public(),
            "ipfs/0.1.0",
            "weft/0.1.0",
            std::slice::from_ref(&addr),
            None,
            vec!["/a".into()],
        );
        let b = IdentifyMessage {
            protocols: vec!["/b".into()],
            ..Default::default()
        };
        let mut wire = a.encode_length_delimited_to_vec();
        wire.extend(b.encode_length_delimited_to_vec());
        let got = read(&mut Cursor::new(wire)).await.unwrap();
        let info = IdentifyInfo::from_message(&got);
        assert_eq!(info.protocols, vec!["/a".to_string(), "/b".to_string()]);
        assert_eq!(info.listen_addrs, vec![addr]);
        assert_eq!(info.public_key, Some(key.public()));
        assert_eq!(info.agent_version.as_deref(), Some("weft/0.1.0"));
    }

    #[tokio::test]
    async fn rejects_oversized_and_truncated_and_empty() {
        let mut big = Vec::new();
        unsigned_varint::encode::usize(
            MAX_MESSAGE_LEN + 1,
            &mut unsigned_varint::encode::usize_buffer(),
        )
        .iter()
        .for_each(|b| big.push(*b));
        assert!(matches!(
            read(&mut Cursor::new(big)).await,
            Err(IdentifyError::TooLarge(_))
        ));
        assert!(matches!(
            read(&mut Cursor::new(vec![0x80u8])).await,
            Err(IdentifyError::Varint(_))
        ));
        assert!(matches!(
            read(&mut Cursor::new(vec![5u8, 1, 2])).await,
            Err(IdentifyError::Io(_))
        ));
        assert!(matches!(
            read(&mut Cursor::new(Vec::new())).await,
            Err(IdentifyError::Empty)
        ));
    }

    #[test]
    fn build_drops_addresses_to_fit() {
        let key = libp2p_identity::Keypair::generate_ed25519();
        let addrs: Vec<Multiaddr> = (0..1000)
            .map(|i| {
                format!("/ip4/10.0.{}.{}/tcp/4001", i / 250, i % 250)
                    .parse()
                    .unwrap()
            })
            .collect();
        let msg = build_message(&key.public(), "p", "a", &addrs, None, vec![]);
        assert!(msg.encoded_len() <= MAX_SEND_LEN);
        assert!(!msg.listen_addrs.is_empty());
    }
}
