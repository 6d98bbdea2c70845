//! Helpers shared by the integration tests: TCP pairs on 127.0.0.1, random data,
//! checksummed transfers.
#![allow(dead_code)]

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ring::rand::SecureRandom;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// A connected pair of TCP streams on 127.0.0.1: (dialer side, listener side).
pub async fn tcp_pair() -> (Compat<TcpStream>, Compat<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.unwrap();
    let (accepted, _) = accepted.unwrap();
    dialed.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (dialed.compat(), accepted.compat())
}

/// `len` random bytes from the system RNG.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ring::rand::SystemRandom::new().fill(&mut data).unwrap();
    data
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Writes `data` in `chunk`-sized writes, then closes the write side.
pub async fn send_all<W: AsyncWrite + Unpin>(mut writer: W, data: &[u8], chunk: usize) {
    for piece in data.chunks(chunk) {
        writer.write_all(piece).await.unwrap();
    }
    writer.close().await.unwrap();
}

/// Reads exactly `len` bytes with a streaming SHA-256, returning the digest.
pub async fn receive_digest<R: AsyncRead + Unpin>(mut reader: R, len: usize) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 100_000];
    let mut remaining = len;
    while remaining > 0 {
        let want = remaining.min(buf.len());
        let n = reader.read(&mut buf[..want]).await.unwrap();
        assert!(n > 0, "stream ended with {remaining} bytes still expected");
        context.update(&buf[..n]);
        remaining -= n;
    }
    context.finish().as_ref().to_vec()
}

/// Sends `len` random bytes each way at once over two duplex channels and checks
/// both SHA-256 digests.
pub async fn exchange_checksummed<A, B>(a: A, b: B, len: usize)
where
    A: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let a_data = random_bytes(len);
    let b_data = random_bytes(len);
    let (a_digest, b_digest) = (sha256(&a_data), sha256(&b_data));
    let (a_read, a_write) = a.split();
    let (b_read, b_write) = b.split();
    let a_send = tokio::spawn(async move { send_all(a_write, &a_data, 1 << 20).await });
    let b_send = tokio::spawn(async move { send_all(b_write, &b_data, 100_003).await });
    let a_recv = tokio::spawn(receive_digest(a_read, len));
    let b_recv = tokio::spawn(receive_digest(b_read, len));
    a_send.await.unwrap();
    b_send.await.unwrap();
    assert_eq!(b_recv.await.unwrap(), a_digest, "a -> b corrupted");
    assert_eq!(a_recv.await.unwrap(), b_digest, "b -> a corrupted");
}

/// Reads one `u16`-length-prefixed frame.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut prefix = [0u8; 2];
    reader.read_exact(&mut prefix).await?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    reader.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one `u16`-length-prefixed frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> std::io::Result<()> {
    let len = u16::try_from(body.len()).unwrap();
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await
}

/// A snow handshake state for libp2p Noise with a fresh static key: (state, static
/// public key).
pub fn snow_state(initiator: bool) -> (snow::HandshakeState, Vec<u8>) {
    let params: snow::params::NoiseParams = "Noise_XX_25519_ChaChaPoly_SHA256".parse().unwrap();
    let builder = snow::Builder::new(params);
    let keypair = builder.generate_keypair().unwrap();
    let builder = builder.local_private_key(&keypair.private).unwrap();
    let state = if initiator {
        builder.build_initiator().unwrap()
    } else {
        builder.build_responder().unwrap()
    };
    (state, keypair.public)
}

/// A handshake payload that signs `signed_static_key` with `identity`.
pub fn payload_for(identity: &libp2p_identity::Keypair, signed_static_key: &[u8]) -> Vec<u8> {
    use prost::Message;
    let mut data = b"noise-libp2p-static-key:".to_vec();
    data.extend_from_slice(signed_static_key);
    weft_security_noise::payload::NoiseHandshakePayload {
        identity_key: Some(identity.public().encode_protobuf()),
        identity_sig: Some(identity.sign(&data).unwrap()),
        extensions: None,
    }
    .encode_to_vec()
}

/// A hand-driven Noise responder (snow, no weft code) that reads message 1 and answers
/// message 2 with `payload(its static public key)`, then waits for message 3.
pub async fn evil_responder<S>(mut io: S, payload: impl FnOnce(&[u8]) -> Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut state, static_key) = snow_state(false);
    let payload = payload(&static_key);
    let msg1 = read_frame(&mut io).await.unwrap();
    let mut scratch = vec![0u8; 65535];
    state.read_message(&msg1, &mut scratch).unwrap();
    let len = state.write_message(&payload, &mut scratch).unwrap();
    write_frame(&mut io, &scratch[..len]).await.unwrap();
    let _ = read_frame(&mut io).await;
}
