//! Inlined stream muxer negotiation through the `stream_muxers` Noise extension.
//!
//! The responder lists its muxers in message 2, the initiator in message 3; the
//! result is the first entry of the initiator's list that both support.
//!
//! When the lists do not overlap, the spec says the handshake MUST fail, while
//! go-libp2p (the only deployed implementation of this extension) completes the
//! handshake and negotiates the muxer with multistream-select instead. We follow
//! go-libp2p: no overlap gives `None`, as does an absent or empty list on either side.
//! Failing would break connections that multistream-select could still complete.

/// The most muxer ids we accept from a remote (go-libp2p's bound).
pub const MAX_REMOTE_MUXERS: usize = 100;

/// Picks the muxer: the first of the initiator's list that the responder also lists.
///
/// Returns `None` when either list is empty or they share no entry.
pub fn select_muxer(initiator: &[String], responder: &[String]) -> Option<String> {
    initiator
        .iter()
        .find(|candidate| responder.contains(candidate))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn follows_the_initiator_preference() {
        let initiator = list(&["/yamux/1.0.0", "/mplex/6.7.0"]);
        let responder = list(&["/mplex/6.7.0", "/yamux/1.0.0"]);
        assert_eq!(
            select_muxer(&initiator, &responder).as_deref(),
            Some("/yamux/1.0.0")
        );
        assert_eq!(
            select_muxer(&responder, &initiator).as_deref(),
            Some("/mplex/6.7.0")
        );
    }

    #[test]
    fn empty_or_disjoint_lists_fall_back() {
        let yamux = list(&["/yamux/1.0.0"]);
        assert_eq!(select_muxer(&[], &yamux), None);
        assert_eq!(select_muxer(&yamux, &[]), None);
        assert_eq!(select_muxer(&yamux, &list(&["/mplex/6.7.0"])), None);
    }
}
