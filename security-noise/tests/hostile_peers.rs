//! Hostile and broken peers over TCP on 127.0.0.1: a relay that flips a byte of each
//! handshake message, frames announced and never sent, oversized handshake messages,
//! garbage, an early payload in message 1, corrupted transport frames. Each must be a
//! typed error, never a panic or a hang.

mod common;

use common::{read_frame, snow_state, tcp_pair, write_frame};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_security_noise::{NoiseConfig, NoiseError};
use weft_upgrader::{SecurityError, SecurityUpgrade};

const SHORT: Duration = Duration::from_millis(500);
/// A test-level guard: nothing here may take this long.
const GUARD: Duration = Duration::from_secs(10);

fn noise() -> weft_security_noise::Noise {
    NoiseConfig::new(&Keypair::generate_ed25519())
        .handshake_timeout(SHORT)
        .build()
        .unwrap()
}

fn noise_error(error: &SecurityError) -> &NoiseError {
    match error {
        SecurityError::Authentication(source) | SecurityError::Protocol(source) => {
            source.downcast_ref::<NoiseError>().expect("a NoiseError")
        }
        other => panic!("expected a NoiseError, got {other:?}"),
    }
}

/// Forwards frames from `from` to `to`, flipping a byte of frame number `flip`.
async fn relay_frames(
    mut from: impl futures::AsyncRead + Unpin,
    mut to: impl futures::AsyncWrite + Unpin,
    flip: Option<usize>,
) {
    let mut index = 0;
    while let Ok(mut frame) = read_frame(&mut from).await {
        if Some(index) == flip && !frame.is_empty() {
            let middle = frame.len() / 2;
            frame[middle] ^= 0x01;
        }
        if write_frame(&mut to, &frame).await.is_err() {
            break;
        }
        index += 1;
    }
    let _ = to.close().await;
}

/// Runs a weft handshake through a relay that flips a byte of XX message `message`.
async fn handshake_through_tampering_relay(
    message: u8,
) -> (
    Result<weft_upgrader::SecuredConnection, SecurityError>,
    Result<weft_upgrader::SecuredConnection, SecurityError>,
) {
    let (initiator_io, relay_a) = tcp_pair().await;
    let (relay_b, responder_io) = tcp_pair().await;
    // Initiator -> responder carries messages 1 and 3; responder -> initiator message 2.
    let (to_responder_flip, to_initiator_flip) = match message {
        1 => (Some(0), None),
        2 => (None, Some(0)),
        3 => (Some(1), None),
        _ => unreachable!("XX has three messages"),
    };
    let (a_read, a_write) = relay_a.split();
    let (b_read, b_write) = relay_b.split();
    tokio::spawn(relay_frames(a_read, b_write, to_responder_flip));
    tokio::spawn(relay_frames(b_read, a_write, to_initiator_flip));
    let (initiator, responder) = (noise(), noise());
    let expected = responder.local_peer_id();
    tokio::time::timeout(GUARD, async {
        tokio::join!(
            initiator.secure_outbound(Box::new(initiator_io), Some(expected), &[]),
            responder.secure_inbound(Box::new(responder_io), &[]),
        )
    })
    .await
    .expect("no hang")
}

#[tokio::test]
async fn untampered_relay_works() {
    let (initiator_io, relay_a) = tcp_pair().await;
    let (relay_b, responder_io) = tcp_pair().await;
    let (a_read, a_write) = relay_a.split();
    let (b_read, b_write) = relay_b.split();
    tokio::spawn(relay_frames(a_read, b_write, None));
    tokio::spawn(relay_frames(b_read, a_write, None));
    let (initiator, responder) = (noise(), noise());
    let (out, inb) = tokio::join!(
        initiator.secure_outbound(Box::new(initiator_io), None, &[]),
        responder.secure_inbound(Box::new(responder_io), &[]),
    );
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    out.io.write_all(b"through the relay").await.unwrap();
    out.io.close().await.unwrap();
    let mut received = Vec::new();
    inb.io.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, b"through the relay");
}

#[tokio::test]
async fn flipped_byte_in_message_1_fails_the_initiator_at_message_2() {
    let (out, inb) = handshake_through_tampering_relay(1).await;
    let error = out.unwrap_err();
    assert!(
        matches!(error, SecurityError::Authentication(_)),
        "{error:?}"
    );
    assert!(matches!(
        noise_error(&error),
        NoiseError::Handshake { message: 2, .. }
    ));
    assert!(inb.is_err());
}

#[tokio::test]
async fn flipped_byte_in_message_2_fails_the_initiator() {
    let (out, inb) = handshake_through_tampering_relay(2).await;
    let error = out.unwrap_err();
    assert!(matches!(
        noise_error(&error),
        NoiseError::Handshake {
            message: 2,
            source: snow::Error::Decrypt
        }
    ));
    assert!(inb.is_err());
}

#[tokio::test]
async fn flipped_byte_in_message_3_fails_the_responder() {
    let (out, inb) = handshake_through_tampering_relay(3).await;
    let error = inb.unwrap_err();
    assert!(
        matches!(error, SecurityError::Authentication(_)),
        "{error:?}"
    );
    assert!(matches!(
        noise_error(&error),
        NoiseError::Handshake {
            message: 3,
            source: snow::Error::Decrypt
        }
    ));
    // The initiator cannot know: its handshake completed, but the channel is dead.
    let mut out = out.unwrap();
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(GUARD, out.io.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)));
}

#[tokio::test]
async fn a_frame_announced_and_never_sent_times_out() {
    // As initiator: the "responder" announces message 2 and stalls.
    let (dialer, mut listener) = tcp_pair().await;
    let stall = async move {
        let _ = read_frame(&mut listener).await;
        listener.write_all(&[0x00, 0x80]).await.unwrap();
        listener.flush().await.unwrap();
        tokio::time::sleep(GUARD).await;
        drop(listener);
    };
    let initiator = noise();
    let result = tokio::select! {
        result = initiator.secure_outbound(Box::new(dialer), None, &[]) => result,
        () = stall => panic!("the handshake did not time out"),
    };
    assert!(matches!(result, Err(SecurityError::Timeout(d)) if d == SHORT));

    // As responder: the "initiator" sends only a length prefix.
    let (mut dialer, listener) = tcp_pair().await;
    dialer.write_all(&[0x00, 0x20, 1, 2]).await.unwrap();
    let responder = noise();
    let result = tokio::time::timeout(GUARD, responder.secure_inbound(Box::new(listener), &[]))
        .await
        .expect("bounded by the handshake timeout");
    assert!(matches!(result, Err(SecurityError::Timeout(_))));
    drop(dialer);
}

#[tokio::test]
async fn an_oversized_handshake_message_is_refused_before_it_is_read() {
    let (dialer, mut listener) = tcp_pair().await;
    let peer = async move {
        let _ = read_frame(&mut listener).await;
        // Announce 60000 bytes but send none: we must not wait for them.
        listener.write_all(&60_000u16.to_be_bytes()).await.unwrap();
        listener.flush().await.unwrap();
        tokio::time::sleep(GUARD).await;
    };
    let initiator = noise();
    let result = tokio::select! {
        result = initiator.secure_outbound(Box::new(dialer), None, &[]) => result,
        () = peer => panic!("no answer"),
    };
    let error = result.unwrap_err();
    assert!(matches!(error, SecurityError::Protocol(_)), "{error:?}");
    assert!(matches!(
        noise_error(&error),
        NoiseError::HandshakeMessageTooLarge {
            message: 2,
            len: 60_000,
            ..
        }
    ));
}

#[tokio::test]
async fn garbage_is_a_typed_error() {
    // Garbage instead of message 1.
    let (mut dialer, listener) = tcp_pair().await;
    dialer
        .write_all(&[0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let result = noise().secure_inbound(Box::new(listener), &[]).await;
    assert!(matches!(
        noise_error(&result.unwrap_err()),
        NoiseError::Handshake { message: 1, .. }
    ));

    // Random bytes instead of message 2.
    let (dialer, mut listener) = tcp_pair().await;
    let peer = async move {
        let _ = read_frame(&mut listener).await;
        write_frame(&mut listener, &common::random_bytes(300))
            .await
            .unwrap();
        tokio::time::sleep(GUARD).await;
    };
    let initiator = noise();
    let result = tokio::select! {
        result = initiator.secure_outbound(Box::new(dialer), None, &[]) => result,
        () = peer => panic!("no answer"),
    };
    assert!(matches!(
        noise_error(&result.unwrap_err()),
        NoiseError::Handshake { message: 2, .. }
    ));

    // The stream closing mid-handshake is an I/O error.
    let (dialer, listener) = tcp_pair().await;
    drop(listener);
    let result = noise().secure_outbound(Box::new(dialer), None, &[]).await;
    assert!(matches!(result, Err(SecurityError::Io(_))), "{result:?}");
}

#[tokio::test]
async fn a_payload_in_message_1_is_refused() {
    let (mut dialer, listener) = tcp_pair().await;
    let (mut state, _) = snow_state(true);
    let mut msg1 = vec![0u8; 1024];
    let len = state.write_message(b"early data", &mut msg1).unwrap();
    write_frame(&mut dialer, &msg1[..len]).await.unwrap();
    let result = noise().secure_inbound(Box::new(listener), &[]).await;
    assert!(matches!(
        noise_error(&result.unwrap_err()),
        NoiseError::UnexpectedEarlyPayload(10)
    ));
}

/// A weft responder behind a raw TCP socket that the test controls after a handshake
/// done with snow directly: returns the secured weft side and the raw peer plus its
/// transport state.
async fn weft_responder_and_raw_initiator() -> (
    weft_upgrader::SecuredConnection,
    tokio_util::compat::Compat<TcpStream>,
    snow::TransportState,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let responder = noise();
    let accept = async {
        let (socket, _) = listener.accept().await.unwrap();
        responder
            .secure_inbound(Box::new(socket.compat()), &[])
            .await
            .unwrap()
    };
    let dial = async {
        let mut io = TcpStream::connect(addr).await.unwrap().compat();
        let identity = Keypair::generate_ed25519();
        let (mut state, static_key) = snow_state(true);
        let mut buf = vec![0u8; 65535];
        let len = state.write_message(&[], &mut buf).unwrap();
        write_frame(&mut io, &buf[..len]).await.unwrap();
        let msg2 = read_frame(&mut io).await.unwrap();
        let mut payload = vec![0u8; 65535];
        state.read_message(&msg2, &mut payload).unwrap();
        let ours = common::payload_for(&identity, &static_key);
        let len = state.write_message(&ours, &mut buf).unwrap();
        write_frame(&mut io, &buf[..len]).await.unwrap();
        (io, state.into_transport_mode().unwrap())
    };
    let (secured, (io, state)) = tokio::join!(accept, dial);
    (secured, io, state)
}

#[tokio::test]
async fn corrupted_and_truncated_transport_frames_are_read_errors() {
    // A valid frame, then one with a flipped byte.
    let (mut secured, mut raw, mut state) = weft_responder_and_raw_initiator().await;
    let mut frame = vec![0u8; 100];
    let len = state.write_message(b"fine", &mut frame).unwrap();
    write_frame(&mut raw, &frame[..len]).await.unwrap();
    let len = state.write_message(b"tampered", &mut frame).unwrap();
    frame[3] ^= 0x80;
    write_frame(&mut raw, &frame[..len]).await.unwrap();
    let mut buf = [0u8; 64];
    let n = secured.io.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"fine");
    let error = secured.io.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);

    // A frame announced, then the stream ends.
    let (mut secured, mut raw, _state) = weft_responder_and_raw_initiator().await;
    raw.write_all(&[0x01, 0x00, 1, 2, 3]).await.unwrap();
    raw.close().await.unwrap();
    let error = tokio::time::timeout(GUARD, secured.io.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);

    // A frame shorter than the tag.
    let (mut secured, mut raw, _state) = weft_responder_and_raw_initiator().await;
    write_frame(&mut raw, &[1, 2, 3]).await.unwrap();
    let error = secured.io.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}
