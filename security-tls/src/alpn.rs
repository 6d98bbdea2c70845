//! ALPN for libp2p TLS with inlined muxer negotiation.
//!
//! The client offers its muxer ids in preference order, then `"libp2p"` last. The
//! server picks the first entry of the *client's* list that it supports (its own
//! muxers or `"libp2p"`). A result of `"libp2p"`, or no ALPN at all, means the muxer is
//! negotiated afterwards with multistream-select.

/// The ALPN protocol of libp2p TLS without muxer inlining.
pub const LIBP2P_ALPN: &[u8] = b"libp2p";

/// The ALPN list a client offers: `muxers` in order, then `"libp2p"`.
pub(crate) fn client_protocols(muxers: &[String]) -> Vec<Vec<u8>> {
    muxers
        .iter()
        .map(|m| m.as_bytes())
        .filter(|m| *m != LIBP2P_ALPN)
        .chain(std::iter::once(LIBP2P_ALPN))
        .map(<[u8]>::to_vec)
        .collect()
}

/// The protocols a server supports: its muxers and `"libp2p"`.
pub(crate) fn server_protocols(muxers: &[String]) -> Vec<Vec<u8>> {
    client_protocols(muxers)
}

/// The server's choice: the first of the client's `offered` protocols the server
/// supports, or `None` when nothing matches.
pub(crate) fn choose<'a>(
    offered: impl IntoIterator<Item = &'a [u8]>,
    supported: &[Vec<u8>],
) -> Option<Vec<u8>> {
    offered
        .into_iter()
        .find(|candidate| supported.iter().any(|s| s == candidate))
        .map(<[u8]>::to_vec)
}

/// The muxer an ALPN result designates, if any.
pub(crate) fn muxer_from_alpn(protocol: Option<&[u8]>) -> Option<String> {
    match protocol {
        None => None,
        Some(p) if p == LIBP2P_ALPN => None,
        Some(p) => String::from_utf8(p.to_vec()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn client_list_ends_with_libp2p() {
        assert_eq!(
            client_protocols(&list(&["/yamux/1.0.0", "/mplex/6.7.0"])),
            vec![
                b"/yamux/1.0.0".to_vec(),
                b"/mplex/6.7.0".to_vec(),
                b"libp2p".to_vec()
            ]
        );
        assert_eq!(client_protocols(&[]), vec![b"libp2p".to_vec()]);
    }

    #[test]
    fn server_follows_client_preference() {
        let offered = client_protocols(&list(&["/mplex/6.7.0", "/yamux/1.0.0"]));
        let supported = server_protocols(&list(&["/yamux/1.0.0", "/mplex/6.7.0"]));
        let chosen = choose(offered.iter().map(Vec::as_slice), &supported);
        assert_eq!(chosen.as_deref(), Some(&b"/mplex/6.7.0"[..]));
    }

    #[test]
    fn falls_back_to_libp2p_then_none() {
        let offered = client_protocols(&list(&["/mplex/6.7.0"]));
        let supported = server_protocols(&list(&["/yamux/1.0.0"]));
        let chosen = choose(offered.iter().map(Vec::as_slice), &supported);
        assert_eq!(chosen.as_deref(), Some(LIBP2P_ALPN));
        assert_eq!(muxer_from_alpn(chosen.as_deref()), None);
        let nothing: [&[u8]; 1] = [b"h2"];
        assert_eq!(choose(nothing, &supported), None);
        assert_eq!(
            muxer_from_alpn(Some(b"/yamux/1.0.0")).as_deref(),
            Some("/yamux/1.0.0")
        );
    }
}
