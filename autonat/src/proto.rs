//! The protobuf messages of AutoNAT v2 (`proto3`), field numbers as the spec has
//! them.
//!
//! On `/libp2p/autonat/2/dial-request` every message is a [`Message`] with one of
//! its variants set; on `/libp2p/autonat/2/dial-back` a [`DialBack`] and its
//! [`DialBackResponse`] are sent as they are.

/// A message of the dial-request stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// Which message this is.
    #[prost(oneof = "message::Msg", tags = "1, 2, 3, 4")]
    pub msg: Option<message::Msg>,
}

/// The variants of [`Message`].
pub mod message {
    /// One message of the dial-request stream.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Msg {
        /// Client -> server: the addresses to test and the nonce.
        #[prost(message, tag = "1")]
        DialRequest(super::DialRequest),
        /// Server -> client: the outcome.
        #[prost(message, tag = "2")]
        DialResponse(super::DialResponse),
        /// Server -> client: send this many bytes before I dial.
        #[prost(message, tag = "3")]
        DialDataRequest(super::DialDataRequest),
        /// Client -> server: some of those bytes.
        #[prost(message, tag = "4")]
        DialDataResponse(super::DialDataResponse),
    }
}

/// The addresses a client wants tested, in priority order, and the nonce the
/// dial-back must carry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialRequest {
    /// Binary multiaddrs.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub addrs: Vec<Vec<u8>>,
    /// The nonce.
    #[prost(fixed64, tag = "2")]
    pub nonce: u64,
}

/// The server asks for `num_bytes` of data before dialing address `addr_idx`
/// (the amplification guard).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct DialDataRequest {
    /// The index of the address the server will dial.
    #[prost(uint32, tag = "1")]
    pub addr_idx: u32,
    /// How many bytes of `data` the client must send.
    #[prost(uint64, tag = "2")]
    pub num_bytes: u64,
}

/// The outcome of the server's dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DialStatus {
    /// The proto3 zero value: meaningless.
    Unused = 0,
    /// The server could not connect to the address.
    EDialError = 100,
    /// The server connected, but sending the nonce failed.
    EDialBackError = 101,
    /// The server connected and delivered the nonce.
    Ok = 200,
}

/// The server's answer to a [`DialRequest`].
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct DialResponse {
    /// Whether the request was served ([`ResponseStatus`]).
    #[prost(enumeration = "ResponseStatus", tag = "1")]
    pub status: i32,
    /// The index of the address dialed.
    #[prost(uint32, tag = "2")]
    pub addr_idx: u32,
    /// How the dial went ([`DialStatus`]).
    #[prost(enumeration = "DialStatus", tag = "3")]
    pub dial_status: i32,
}

/// Whether the server served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseStatus {
    /// Some other error on the server.
    EInternalError = 0,
    /// Rate limited, out of resources or blocked.
    ERequestRejected = 100,
    /// The server cannot or will not dial any of the addresses.
    EDialRefused = 101,
    /// An address was dialed (successfully or not).
    Ok = 200,
}

/// Some of the bytes a [`DialDataRequest`] asked for.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialDataResponse {
    /// At most [`crate::MAX_DIAL_DATA_CHUNK`] bytes; only their count matters.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// The server -> client message of the dial-back stream.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct DialBack {
    /// The nonce of the request.
    #[prost(fixed64, tag = "1")]
    pub nonce: u64,
}

/// The client's acknowledgement of a [`DialBack`].
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct DialBackResponse {
    /// Always [`DialBackStatus::Ok`].
    #[prost(enumeration = "DialBackStatus", tag = "1")]
    pub status: i32,
}

/// The status of a [`DialBackResponse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DialBackStatus {
    /// The nonce arrived.
    Ok = 0,
}

impl Message {
    /// A message carrying `msg`.
    pub fn new(msg: message::Msg) -> Self {
        Message { msg: Some(msg) }
    }

    /// The name of the variant, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match &self.msg {
            None => "an empty message",
            Some(message::Msg::DialRequest(_)) => "DialRequest",
            Some(message::Msg::DialResponse(_)) => "DialResponse",
            Some(message::Msg::DialDataRequest(_)) => "DialDataRequest",
            Some(message::Msg::DialDataResponse(_)) => "DialDataResponse",
        }
    }
}
