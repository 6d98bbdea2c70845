//! What the Noise benches share: a connected pair of weft or libp2p-noise channels
//! over an in-memory duplex, boxed alike. (Each bench uses part of it.)
#![allow(dead_code)]

use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p_identity::Keypair;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use weft_security_noise::{CryptoBackend, Noise, NoiseConfig};
use weft_upgrader::SecurityUpgrade;

/// A duplex stream, either implementation's channel.
pub trait Stream: futures::io::AsyncRead + futures::io::AsyncWrite + Send + Unpin {}
impl<T: futures::io::AsyncRead + futures::io::AsyncWrite + Send + Unpin> Stream for T {}

/// The two ends of one channel: (initiator, responder).
pub type Pair = (Box<dyn Stream>, Box<dyn Stream>);

/// One end of an in-memory duplex, as futures-io.
pub type DuplexEnd = Compat<tokio::io::DuplexStream>;

/// Two connected duplex ends with `buffer` bytes of room each way.
pub fn duplex(buffer: usize) -> (DuplexEnd, DuplexEnd) {
    let (x, y) = tokio::io::duplex(buffer);
    (x.compat(), y.compat())
}

/// weft Noise with a fresh Ed25519 key on `backend`.
pub fn weft(backend: CryptoBackend) -> Noise {
    NoiseConfig::new(&Keypair::generate_ed25519())
        .crypto_backend(backend)
        .build()
        .unwrap()
}

/// A weft Noise channel over `x`/`y`, `a` initiating.
pub async fn weft_pair(a: &Noise, b: &Noise, (x, y): (DuplexEnd, DuplexEnd)) -> Pair {
    let (out, inb) = tokio::join!(
        a.secure_outbound(Box::new(x), None, &[]),
        b.secure_inbound(Box::new(y), &[]),
    );
    (Box::new(out.unwrap().io), Box::new(inb.unwrap().io))
}

/// A libp2p-noise config with a fresh Ed25519 key, built once per side: rust-libp2p's
/// transport (`SwarmBuilder::with_tcp(.., noise::Config::new, ..)`, or
/// `Transport::upgrade(..).authenticate(config)`) makes its `Config` (the static X25519
/// key and its signature) once and clones it for every connection.
pub fn libp2p() -> libp2p_noise::Config {
    libp2p_noise::Config::new(&Keypair::generate_ed25519()).unwrap()
}

/// A libp2p-noise channel over `x`/`y`, `a` initiating; each side's config is cloned,
/// as its transport does per connection.
pub async fn libp2p_pair(
    a: &libp2p_noise::Config,
    b: &libp2p_noise::Config,
    (x, y): (DuplexEnd, DuplexEnd),
) -> Pair {
    let (out, inb) = tokio::join!(
        a.clone().upgrade_outbound(x, "/noise"),
        b.clone().upgrade_inbound(y, "/noise"),
    );
    (Box::new(out.unwrap().1), Box::new(inb.unwrap().1))
}
