//! Buffer sizing and release of `NoiseStream`, on both backends and across them.

use super::buffers::MIN_READ_BUFFER;
use super::*;
use crate::config::noise_params;
use crate::framing::MAX_PLAINTEXT_LEN;
use crate::handshake::transport_cipher;
use crate::CryptoBackend;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::FutureExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Runs an XX handshake in memory and returns (initiator, responder) ciphers.
fn session(initiator: CryptoBackend, responder: CryptoBackend) -> (FrameCipher, FrameCipher) {
    let build = |backend: CryptoBackend, initiator: bool| {
        let builder = snow::Builder::with_resolver(noise_params().unwrap(), backend.resolver());
        let key = builder.generate_keypair().unwrap();
        let builder = snow::Builder::with_resolver(noise_params().unwrap(), backend.resolver())
            .local_private_key(&key.private)
            .unwrap();
        if initiator {
            builder.build_initiator().unwrap()
        } else {
            builder.build_responder().unwrap()
        }
    };
    let mut i = build(initiator, true);
    let mut r = build(responder, false);
    let (mut message, mut payload) = ([0u8; 1024], [0u8; 1024]);
    for step in 0..3 {
        let (from, to) = if step == 1 {
            (&mut r, &mut i)
        } else {
            (&mut i, &mut r)
        };
        let n = from.write_message(&[], &mut message).unwrap();
        to.read_message(&message[..n], &mut payload).unwrap();
    }
    (
        transport_cipher(i, initiator).unwrap(),
        transport_cipher(r, responder).unwrap(),
    )
}

fn streams(initiator: CryptoBackend, responder: CryptoBackend) -> (NoiseStream, NoiseStream) {
    let (a, b) = session(initiator, responder);
    let (x, y) = tokio::io::duplex(256 << 10);
    (
        NoiseStream::new(Box::new(x.compat()), a),
        NoiseStream::new(Box::new(y.compat()), b),
    )
}

const BACKENDS: [(CryptoBackend, CryptoBackend); 4] = [
    (CryptoBackend::Ring, CryptoBackend::Ring),
    (CryptoBackend::RustCrypto, CryptoBackend::RustCrypto),
    (CryptoBackend::Ring, CryptoBackend::RustCrypto),
    (CryptoBackend::RustCrypto, CryptoBackend::Ring),
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Polls one read; it must find nothing to read.
fn read_would_block(stream: &mut NoiseStream) {
    let mut buf = [0u8; 16];
    assert!(stream.read(&mut buf).now_or_never().is_none());
}

#[test]
fn an_idle_stream_after_a_large_transfer_holds_no_buffers() {
    let data: Vec<u8> = (0..3 * MAX_PLAINTEXT_LEN + 1234)
        .map(|i| (i % 251) as u8)
        .collect();
    for (initiator, responder) in BACKENDS {
        runtime().block_on(async {
            let (mut a, mut b) = streams(initiator, responder);
            let sender = async {
                a.write_all(&data).await.unwrap();
                a.flush().await.unwrap();
                a
            };
            let receiver = async {
                let mut received = vec![0u8; data.len()];
                b.read_exact(&mut received).await.unwrap();
                assert!(received == data, "{initiator:?} -> {responder:?} corrupted");
                // During the transfer the buffer was a whole frame.
                b
            };
            let (mut a, mut b) = futures::join!(sender, receiver);
            read_would_block(&mut b);
            read_would_block(&mut a);
            assert_eq!(a.buffer_capacities(), (0, 0, 0), "sender {initiator:?}");
            assert_eq!(b.buffer_capacities(), (0, 0, 0), "receiver {responder:?}");

            // And again the other way, with small writes and one flush.
            for chunk in data.chunks(1000) {
                b.write_all(chunk).await.unwrap();
            }
            b.flush().await.unwrap();
            let mut received = vec![0u8; data.len()];
            a.read_exact(&mut received).await.unwrap();
            assert!(received == data);
            read_would_block(&mut a);
            assert_eq!(a.buffer_capacities(), (0, 0, 0));
            assert_eq!(b.buffer_capacities().1, 0);
        });
    }
}

#[test]
fn buffers_grow_only_to_what_a_small_message_needs() {
    runtime().block_on(async {
        let (mut a, mut b) = streams(CryptoBackend::Ring, CryptoBackend::Ring);
        a.write_all(b"hello, noise").await.unwrap();
        let (_, write, _) = a.buffer_capacities();
        assert!(write < 64, "write buffer of {write} bytes for 12 pending");
        a.flush().await.unwrap();
        assert_eq!(a.buffer_capacities(), (0, 0, 0));
        // Read it one byte at a time: the rest waits in a small buffer.
        let mut byte = [0u8; 1];
        b.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"h");
        assert_eq!(b.buffer_capacities().0, MIN_READ_BUFFER);
        let mut rest = [0u8; 11];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"ello, noise");
        read_would_block(&mut b);
        assert_eq!(b.buffer_capacities(), (0, 0, 0));
    });
}

#[test]
fn a_partial_frame_is_kept_while_the_read_blocks() {
    runtime().block_on(async {
        let (cipher, _) = session(CryptoBackend::Ring, CryptoBackend::Ring);
        let (x, mut raw) = tokio::io::duplex(1 << 10);
        let mut stream = NoiseStream::new(Box::new(x.compat()), cipher);
        // A frame announcing 40000 bytes, of which only 100 arrive.
        use tokio::io::AsyncWriteExt as _;
        raw.write_all(&40000u16.to_be_bytes()).await.unwrap();
        raw.write_all(&[0u8; 100]).await.unwrap();
        read_would_block(&mut stream);
        let (read, _, _) = stream.buffer_capacities();
        assert_eq!(read, 2 + 40000, "grown to the announced frame, no more");
    });
}
