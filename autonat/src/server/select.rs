//! Which address a server dials, and the amplification guard's accounting, apart
//! from any I/O.
//!
//! The server dials the first address it is able and willing to dial (the host
//! decides which: a public address of a transport it has), and never one that is
//! relayed or names no IP address. When that address's IP is not the one the
//! request came from, the client must first send dial data.

use crate::MAX_DIAL_DATA_CHUNK;
use multiaddr::{Multiaddr, Protocol};
use std::net::IpAddr;

/// The address a server picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its index in the request.
    pub index: usize,
    /// The address.
    pub addr: Multiaddr,
    /// Whether its IP is not the client's observed IP: dial data is needed first.
    pub needs_dial_data: bool,
}

/// The IP address a multiaddr starts with, if it starts with one.
pub fn leading_ip(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// Picks the first of `addrs` (binary multiaddrs, as the request carries them)
/// that starts with an IP address, goes through no relay, and `can_dial` accepts.
/// `observed_ip` is the IP address the request came from (`None`: unknown, so
/// every dial needs dial data). `None` when no address qualifies.
pub fn select(
    addrs: &[Vec<u8>],
    observed_ip: Option<IpAddr>,
    can_dial: impl Fn(&Multiaddr) -> bool,
) -> Option<Selected> {
    addrs.iter().enumerate().find_map(|(index, bytes)| {
        let addr = Multiaddr::try_from(bytes.clone()).ok()?;
        let ip = leading_ip(&addr)?;
        if addr.iter().any(|p| p == Protocol::P2pCircuit) || !can_dial(&addr) {
            return None;
        }
        Some(Selected {
            index,
            needs_dial_data: observed_ip != Some(ip),
            addr,
        })
    })
}

/// Counts the dial data a client sends until it reaches what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialDataCounter {
    asked: u64,
    received: u64,
}

/// A chunk of dial data above [`MAX_DIAL_DATA_CHUNK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a dial data chunk of {0} bytes exceeds {MAX_DIAL_DATA_CHUNK}")]
pub struct ChunkTooLarge(pub usize);

impl DialDataCounter {
    /// Waiting for `asked` bytes.
    pub fn new(asked: u64) -> Self {
        DialDataCounter { asked, received: 0 }
    }

    /// A chunk of `len` bytes arrived; true once everything asked has (the last
    /// chunk may bring more than needed, as the spec allows).
    ///
    /// # Errors
    ///
    /// [`ChunkTooLarge`] for a chunk above [`MAX_DIAL_DATA_CHUNK`].
    pub fn on_chunk(&mut self, len: usize) -> Result<bool, ChunkTooLarge> {
        if len > MAX_DIAL_DATA_CHUNK {
            return Err(ChunkTooLarge(len));
        }
        self.received = self.received.saturating_add(len as u64);
        Ok(self.is_complete())
    }

    /// Whether everything asked has arrived.
    pub fn is_complete(&self) -> bool {
        self.received >= self.asked
    }

    /// The bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(addrs: &[&str]) -> Vec<Vec<u8>> {
        addrs
            .iter()
            .map(|a| a.parse::<Multiaddr>().unwrap().to_vec())
            .collect()
    }

    #[test]
    fn the_first_dialable_address_is_selected_and_another_ip_needs_dial_data() {
        let observed: IpAddr = "1.2.3.4".parse().unwrap();
        let no_quic = |a: &Multiaddr| !a.iter().any(|p| p == Protocol::QuicV1);
        let addrs = bytes(&[
            "/ip4/1.2.3.4/udp/1/quic-v1",
            "/dns4/example.com/tcp/1",
            "/ip4/5.6.7.8/tcp/1/p2p-circuit",
            "/ip4/5.6.7.8/tcp/2",
            "/ip4/1.2.3.4/tcp/3",
        ]);
        let picked = select(&addrs, Some(observed), no_quic).unwrap();
        assert_eq!(picked.index, 3);
        assert!(
            picked.needs_dial_data,
            "5.6.7.8 is not where the request came from"
        );
        let same = select(&addrs[4..], Some(observed), no_quic).unwrap();
        assert_eq!((same.index, same.needs_dial_data), (0, false));
        // No known origin: every dial costs data.
        assert!(select(&addrs[4..], None, no_quic).unwrap().needs_dial_data);
    }

    #[test]
    fn garbage_and_undialable_addresses_select_nothing() {
        let addrs = vec![
            vec![0xff, 0xff],
            vec![],
            bytes(&["/ip4/10.0.0.1/tcp/1"]).remove(0),
        ];
        assert_eq!(select(&addrs, None, |_| false), None);
        assert_eq!(select(&[], None, |_| true), None);
        // The garbage is skipped, not fatal.
        assert_eq!(select(&addrs, None, |_| true).unwrap().index, 2);
    }

    #[test]
    fn dial_data_counts_to_the_amount_asked_in_bounded_chunks() {
        let mut c = DialDataCounter::new(10_000);
        assert_eq!(c.on_chunk(4096), Ok(false));
        assert_eq!(c.on_chunk(4096), Ok(false));
        assert_eq!(
            c.on_chunk(MAX_DIAL_DATA_CHUNK + 1),
            Err(ChunkTooLarge(4097))
        );
        assert_eq!(c.on_chunk(0), Ok(false), "an empty chunk counts nothing");
        // The last chunk may overshoot.
        assert_eq!(c.on_chunk(4096), Ok(true));
        assert_eq!(c.received(), 12_288);
        assert!(DialDataCounter::new(0).is_complete());
    }
}
