//! Property tests: any write pattern (sizes, flush points, read sizes) through a weft
//! Noise channel reads back the same bytes; random bytes into the payload decoder never
//! panic, and encoded payloads decode to themselves.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use proptest::prelude::*;
use prost::Message;
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_security_noise::payload::{decode_payload, NoiseExtensions, NoiseHandshakePayload};
use weft_security_noise::Noise;
use weft_upgrader::SecurityUpgrade;

fn round_trip(writes: Vec<(usize, bool)>, read_size: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (x, y) = (
            Noise::new(&Keypair::generate_ed25519()).unwrap(),
            Noise::new(&Keypair::generate_ed25519()).unwrap(),
        );
        let (out, inb) = tokio::join!(
            x.secure_outbound(Box::new(a.compat()), None, &[]),
            y.secure_inbound(Box::new(b.compat()), &[]),
        );
        let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
        let total: usize = writes.iter().map(|(size, _)| size).sum();
        let data: Vec<u8> = (0..total).map(|i| (i * 31 + i / 251) as u8).collect();
        let expected = data.clone();
        let writer = async move {
            let mut offset = 0;
            for (size, flush) in writes {
                out.io
                    .write_all(&data[offset..offset + size])
                    .await
                    .unwrap();
                offset += size;
                if flush {
                    out.io.flush().await.unwrap();
                }
            }
            out.io.close().await.unwrap();
        };
        let reader = async move {
            let mut received = Vec::with_capacity(total);
            let mut buf = vec![0u8; read_size];
            loop {
                let n = inb.io.read(&mut buf).await.unwrap();
                if n == 0 {
                    break received;
                }
                received.extend_from_slice(&buf[..n]);
            }
        };
        let ((), received) = tokio::join!(writer, reader);
        assert_eq!(received, expected);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_write_pattern_reads_back_the_same_bytes(
        writes in proptest::collection::vec(
            (prop_oneof![0usize..64, 60_000usize..140_000, 65_519usize..65_520], any::<bool>()),
            0..12,
        ),
        read_size in prop_oneof![1usize..32, 1000usize..70_000],
    ) {
        round_trip(writes, read_size);
    }

    #[test]
    fn random_bytes_never_panic_the_payload_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = decode_payload(&bytes);
    }

    #[test]
    fn encoded_payloads_decode_to_themselves(
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        sig in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        muxers in proptest::option::of(proptest::collection::vec("[ -~]{0,20}", 0..5)),
    ) {
        let payload = NoiseHandshakePayload {
            identity_key: key,
            identity_sig: sig,
            extensions: muxers.map(|stream_muxers| NoiseExtensions {
                webtransport_certhashes: Vec::new(),
                stream_muxers,
            }),
        };
        prop_assert_eq!(decode_payload(&payload.encode_to_vec()).unwrap(), payload);
    }
}
