//! Address time-to-live constants (the values go-libp2p users know) and their encoding.

use std::time::Duration;

/// Addresses we are not sure of yet (for example, learned from a third party): 2 minutes.
pub const TEMP_ADDR_TTL: Duration = Duration::from_secs(2 * 60);
/// Addresses of a peer we were connected to until recently: 15 minutes.
/// [`crate::PeerStore::on_disconnected`] moves [`CONNECTED_ADDR_TTL`] addresses here.
pub const RECENTLY_CONNECTED_ADDR_TTL: Duration = Duration::from_secs(15 * 60);
/// Our own addresses as observed by others: 30 minutes.
pub const OWN_OBSERVED_ADDR_TTL: Duration = Duration::from_secs(30 * 60);
/// Addresses from a provider record: 1 hour.
pub const PROVIDER_ADDR_TTL: Duration = Duration::from_secs(60 * 60);
/// The default for addresses with no better-known lifetime: 1 hour.
pub const DEFAULT_ADDR_TTL: Duration = PROVIDER_ADDR_TTL;
/// Addresses that never expire (for example, configured bootstrap peers).
pub const PERMANENT_ADDR_TTL: Duration = Duration::MAX;
/// Addresses of a peer we are connected to: they never expire while the connection lasts;
/// on disconnect they are downgraded to [`RECENTLY_CONNECTED_ADDR_TTL`].
///
/// It is one nanosecond less than [`PERMANENT_ADDR_TTL`] so that the two can be told apart
/// (as in go-libp2p), for example by [`crate::PeerStore::update_addrs`].
pub const CONNECTED_ADDR_TTL: Duration = Duration::new(u64::MAX, 999_999_998);

/// Stored TTL of [`PERMANENT_ADDR_TTL`].
pub(crate) const PERMANENT_TTL_MS: u64 = u64::MAX;
/// Stored TTL of [`CONNECTED_ADDR_TTL`].
pub(crate) const CONNECTED_TTL_MS: u64 = u64::MAX - 1;
/// Stored expiry of an address that never expires.
pub(crate) const NEVER_EXPIRES_MS: u64 = u64::MAX;

/// The stored form of a TTL: milliseconds rounded up (so a non-zero TTL stays non-zero),
/// with two reserved values for permanent and connected.
pub(crate) fn ttl_to_ms(ttl: Duration) -> u64 {
    if ttl == PERMANENT_ADDR_TTL {
        return PERMANENT_TTL_MS;
    }
    if ttl == CONNECTED_ADDR_TTL {
        return CONNECTED_TTL_MS;
    }
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms)
        .unwrap_or(u64::MAX)
        .min(CONNECTED_TTL_MS - 1)
}

/// The expiry (UNIX milliseconds) of an address given `ttl_ms` at `now_ms`.
pub(crate) fn expiry_ms(now_ms: u64, ttl_ms: u64) -> u64 {
    if ttl_ms >= CONNECTED_TTL_MS {
        NEVER_EXPIRES_MS
    } else {
        now_ms.saturating_add(ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ttls_are_distinct_and_never_expire() {
        assert_eq!(ttl_to_ms(PERMANENT_ADDR_TTL), PERMANENT_TTL_MS);
        assert_eq!(ttl_to_ms(CONNECTED_ADDR_TTL), CONNECTED_TTL_MS);
        assert_eq!(expiry_ms(5, CONNECTED_TTL_MS), NEVER_EXPIRES_MS);
        assert_eq!(expiry_ms(5, PERMANENT_TTL_MS), NEVER_EXPIRES_MS);
    }

    #[test]
    fn ordinary_ttls_round_up_to_milliseconds() {
        assert_eq!(ttl_to_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_to_ms(Duration::ZERO), 0);
        assert_eq!(ttl_to_ms(TEMP_ADDR_TTL), 120_000);
        assert_eq!(expiry_ms(1_000, 120_000), 121_000);
        // A huge, but not reserved, TTL stays below the reserved values.
        assert!(ttl_to_ms(Duration::from_secs(u64::MAX)) < CONNECTED_TTL_MS);
    }
}
