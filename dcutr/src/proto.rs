//! The protobuf message of `/libp2p/dcutr` (package `holepunch.pb`), field numbers
//! as the spec has them.
//!
//! `type` is `required` in the spec's proto2 schema; it is decoded as optional here
//! so that a message without it is rejected with a clear error by the state
//! machines ([`ExchangeError::MissingType`](crate::ExchangeError::MissingType)), not
//! by the decoder.

/// A hole punching message: CONNECT (with addresses) or SYNC.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HolePunch {
    /// The message type ([`Type`]).
    #[prost(enumeration = "Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// Binary multiaddrs: the sender's observed and predicted addresses.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub obs_addrs: Vec<Vec<u8>>,
}

/// The message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Type {
    /// Addresses, sent by both sides; the initiator measures the RTT with it.
    Connect = 100,
    /// Sent by the initiator: the responder dials when it arrives.
    Sync = 300,
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Type::Connect => "CONNECT",
            Type::Sync => "SYNC",
        })
    }
}

impl HolePunch {
    /// A CONNECT carrying `addrs` (already encoded).
    pub fn connect(addrs: Vec<Vec<u8>>) -> Self {
        HolePunch {
            r#type: Some(Type::Connect as i32),
            obs_addrs: addrs,
        }
    }

    /// A SYNC.
    pub fn sync() -> Self {
        HolePunch {
            r#type: Some(Type::Sync as i32),
            obs_addrs: Vec::new(),
        }
    }

    /// The message's type.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::MissingType`](crate::ExchangeError::MissingType) or
    /// [`ExchangeError::UnknownType`](crate::ExchangeError::UnknownType).
    pub fn kind(&self) -> Result<Type, crate::ExchangeError> {
        let raw = self.r#type.ok_or(crate::ExchangeError::MissingType)?;
        Type::try_from(raw).map_err(|_| crate::ExchangeError::UnknownType(raw))
    }
}
