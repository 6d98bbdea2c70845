//! The XX handshake with the libp2p payload, driven over a byte stream.

// `SecurityError` (the shared trait's error type, two `PeerId`s wide) is what the
// trait returns; boxing it here would only move the cost.
#![allow(clippy::result_large_err)]

use crate::error::NoiseError;
use crate::framing::{
    read_handshake_frame, write_handshake_frame, ReadFrameError, LEN_PREFIX, MAX_FRAME_LEN,
};
use crate::muxer_negotiation::{select_muxer, MAX_REMOTE_MUXERS};
use crate::payload::{
    decode_payload, static_key_signing_data, NoiseExtensions, NoiseHandshakePayload,
};
use crate::static_dh::StaticKeyResolver;
use crate::transport::cipher::FrameCipher;
use crate::transport::NoiseStream;
use crate::upgrade::Shared;
use crate::CryptoBackend;
use libp2p_identity::{PeerId, PublicKey};
use prost::Message;
use snow::HandshakeState;
use weft_upgrader::{
    BoxedIo, Budget, BudgetDenied, Priority, Reservation, Role, SecuredConnection, SecurityError,
};

/// What the remote proved in its handshake payload.
struct RemoteIdentity {
    public_key: PublicKey,
    muxers: Vec<String>,
}

/// The memory a Noise channel reserves from its budget while the handshake runs:
/// its frame buffer and the largest payload it accepts.
fn handshake_memory(shared: &Shared) -> usize {
    LEN_PREFIX + MAX_FRAME_LEN + shared.config.max_handshake_message_len
}

/// The memory an established Noise channel keeps reserved for its life: the read
/// buffer a remote can make it fill (one whole frame, decrypted in place).
pub(crate) const CHANNEL_MEMORY: usize = LEN_PREFIX + MAX_FRAME_LEN;

/// The priority of those reservations: a new connection's fixed buffers may take
/// the scope up to about 60%, so that under memory pressure new handshakes fail
/// before the streams of established connections are shed.
pub const BUFFER_PRIORITY: Priority = Priority::MEDIUM;

/// A denied buffer reservation, as the handshake's error.
fn denied(what: &str, error: BudgetDenied) -> SecurityError {
    SecurityError::Io(std::io::Error::new(
        std::io::ErrorKind::OutOfMemory,
        format!("noise: the memory budget denied the {what}: {error}"),
    ))
}

/// The buffers and state of one handshake in progress.
struct Handshake<'a> {
    shared: &'a Shared,
    io: BoxedIo,
    /// The budget's share of the buffers, handed on to the channel.
    memory: Reservation,
    state: HandshakeState,
    /// The frame being sent or received (length prefix included).
    frame: Vec<u8>,
    /// The decrypted payload of the last message read.
    payload: Vec<u8>,
}

/// Runs the handshake as `role` and returns the secured connection.
pub(crate) async fn handshake(
    shared: &Shared,
    io: BoxedIo,
    role: Role,
    expected: Option<PeerId>,
    muxers: &[String],
    budget: Budget,
) -> Result<SecuredConnection, SecurityError> {
    let memory = budget
        .reserve(handshake_memory(shared), BUFFER_PRIORITY)
        .map_err(|e| denied("handshake buffers", e))?;
    let params = crate::config::noise_params()?;
    let resolver = match &shared.static_key {
        Some(key) => Box::new(StaticKeyResolver::new(
            shared.config.backend.resolver(),
            key.clone(),
        )),
        None => shared.config.backend.resolver(),
    };
    let builder = snow::Builder::with_resolver(params, resolver)
        .local_private_key(&shared.static_keypair.private)
        .map_err(NoiseError::Setup)?;
    let state = match role {
        Role::Initiator => builder.build_initiator(),
        Role::Responder => builder.build_responder(),
    }
    .map_err(NoiseError::Setup)?;
    let mut hs = Handshake {
        shared,
        io,
        memory,
        state,
        frame: vec![0; LEN_PREFIX + MAX_FRAME_LEN],
        payload: vec![0; shared.config.max_handshake_message_len],
    };
    match role {
        Role::Initiator => {
            hs.send(1, &[]).await?;
            let remote = hs.receive_identity(2).await?;
            check_expected(expected, &remote.public_key)?;
            let ours = hs.local_payload(muxers);
            hs.send(3, &ours).await?;
            let muxer = select_muxer(muxers, &remote.muxers);
            hs.finish(remote, muxer)
        }
        Role::Responder => {
            let early = hs.receive(1).await?;
            if early != 0 {
                return Err(NoiseError::UnexpectedEarlyPayload(early).into());
            }
            let ours = hs.local_payload(muxers);
            hs.send(2, &ours).await?;
            let remote = hs.receive_identity(3).await?;
            check_expected(expected, &remote.public_key)?;
            let muxer = select_muxer(&remote.muxers, muxers);
            hs.finish(remote, muxer)
        }
    }
}

fn check_expected(expected: Option<PeerId>, remote: &PublicKey) -> Result<(), SecurityError> {
    let actual = remote.to_peer_id();
    match expected {
        Some(expected) if expected != actual => {
            Err(SecurityError::PeerIdMismatch { expected, actual })
        }
        _ => Ok(()),
    }
}

impl Handshake<'_> {
    /// Encrypts `payload` into handshake message `message` and sends it.
    async fn send(&mut self, message: u8, payload: &[u8]) -> Result<(), SecurityError> {
        let len = self
            .state
            .write_message(payload, &mut self.frame[LEN_PREFIX..])
            .map_err(|source| NoiseError::Handshake { message, source })?;
        write_handshake_frame(&mut self.io, &mut self.frame, len).await?;
        tracing::trace!(message, len, "sent noise handshake message");
        Ok(())
    }

    /// Reads handshake message `message` and decrypts its payload into `self.payload`;
    /// returns the payload length.
    async fn receive(&mut self, message: u8) -> Result<usize, SecurityError> {
        let max = self.shared.config.max_handshake_message_len;
        let len = read_handshake_frame(&mut self.io, &mut self.frame, max, message)
            .await
            .map_err(|error| match error {
                ReadFrameError::Io(io) => SecurityError::Io(io),
                ReadFrameError::Noise(noise) => noise.into(),
            })?;
        tracing::trace!(message, len, "received noise handshake message");
        let ciphertext = self.frame.get(..len).unwrap_or_default();
        let payload_len = self
            .state
            .read_message(ciphertext, &mut self.payload)
            .map_err(|source| NoiseError::Handshake { message, source })?;
        Ok(payload_len)
    }

    /// Reads message 2 or 3 and verifies the identity it carries.
    async fn receive_identity(&mut self, message: u8) -> Result<RemoteIdentity, SecurityError> {
        let len = self.receive(message).await?;
        let payload = decode_payload(self.payload.get(..len).unwrap_or_default())?;
        let remote_static = self
            .state
            .get_remote_static()
            .ok_or(NoiseError::MissingRemoteStaticKey)?;
        Ok(verify_payload(payload, remote_static)?)
    }

    /// Our payload for message 2 (responder) or 3 (initiator).
    fn local_payload(&self, muxers: &[String]) -> Vec<u8> {
        let config = &self.shared.config;
        let extensions =
            (!muxers.is_empty() || !config.webtransport_certhashes.is_empty()).then(|| {
                NoiseExtensions {
                    webtransport_certhashes: config.webtransport_certhashes.clone(),
                    stream_muxers: muxers.to_vec(),
                }
            });
        NoiseHandshakePayload {
            identity_key: Some(self.shared.identity_key.clone()),
            identity_sig: Some(self.shared.static_signature.clone()),
            extensions,
        }
        .encode_to_vec()
    }

    fn finish(
        mut self,
        remote: RemoteIdentity,
        muxer: Option<String>,
    ) -> Result<SecuredConnection, SecurityError> {
        drop(std::mem::take(&mut self.frame));
        drop(std::mem::take(&mut self.payload));
        self.memory
            .resize(CHANNEL_MEMORY, BUFFER_PRIORITY)
            .map_err(|e| denied("read buffer", e))?;
        let cipher = transport_cipher(self.state, self.shared.config.backend)?;
        let remote_peer = remote.public_key.to_peer_id();
        Ok(SecuredConnection {
            remote_peer,
            remote_public_key: remote.public_key,
            io: Box::new(NoiseStream::new(self.io, cipher).with_memory(self.memory)),
            muxer,
        })
    }
}

/// The transport ciphers of the finished handshake: `ring` with the split keys, or
/// snow's transport state for the RustCrypto backend.
pub(crate) fn transport_cipher(
    mut state: HandshakeState,
    backend: CryptoBackend,
) -> Result<FrameCipher, NoiseError> {
    match backend {
        CryptoBackend::Ring => {
            if !state.is_handshake_finished() {
                return Err(NoiseError::Setup(snow::Error::State(
                    snow::error::StateProblem::HandshakeNotFinished,
                )));
            }
            let initiator = state.is_initiator();
            let (mut initiator_key, mut responder_key) = state.dangerously_get_raw_split();
            let cipher = FrameCipher::ring(initiator, &initiator_key, &responder_key);
            initiator_key.fill(0);
            responder_key.fill(0);
            Ok(cipher)
        }
        CryptoBackend::RustCrypto => Ok(FrameCipher::snow(
            state.into_transport_mode().map_err(NoiseError::Setup)?,
        )),
    }
}

/// Checks a decoded payload against the static key snow received.
fn verify_payload(
    payload: NoiseHandshakePayload,
    remote_static: &[u8],
) -> Result<RemoteIdentity, NoiseError> {
    let key_bytes = payload.identity_key.ok_or(NoiseError::MissingIdentityKey)?;
    let signature = payload
        .identity_sig
        .ok_or(NoiseError::MissingIdentitySignature)?;
    let public_key =
        PublicKey::try_decode_protobuf(&key_bytes).map_err(NoiseError::InvalidIdentityKey)?;
    if !public_key.verify(&static_key_signing_data(remote_static), &signature) {
        return Err(NoiseError::BadIdentitySignature);
    }
    let muxers = payload
        .extensions
        .map(|extensions| extensions.stream_muxers)
        .unwrap_or_default();
    if muxers.len() > MAX_REMOTE_MUXERS {
        return Err(NoiseError::TooManyMuxers {
            count: muxers.len(),
            max: MAX_REMOTE_MUXERS,
        });
    }
    Ok(RemoteIdentity { public_key, muxers })
}
