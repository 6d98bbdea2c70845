//! Conformance checks for [`SecurityUpgrade`] implementations.
//!
//! Every check takes a factory that builds the implementation under test from an
//! identity [`Keypair`]: `|keypair| Arc::new(MySecurity::new(keypair)) as _`.
//! [`run_all`] runs them all; each is also public, to run as a separate test.
//!
//! What is checked:
//!
//! | check | promise |
//! |---|---|
//! | [`handshake_over_tcp`] | both roles complete over TCP and report the other's `PeerId` and key |
//! | [`handshake_over_memory`] | the same over an in-memory pipe (no TCP-specific assumptions) |
//! | [`key_types`] | Ed25519, Secp256k1 and ECDSA identities are proven both ways |
//! | [`expected_peer_mismatch`] | a dialer expecting another peer fails with `PeerIdMismatch` |
//! | [`large_transfer`] | 8 MiB each way at the same time arrive intact |
//! | [`half_close`] | after our `close()`, the remote reads EOF and can still answer |
//! | [`close_and_drop`] | the remote's reads end promptly when we close or drop the channel |
//! | [`inlined_muxer`] | muxer agreement inside the handshake follows the initiator's preference |
//! | [`garbage_input`] | garbage or an early EOF fails the handshake, in both roles, without hanging |
//! | [`budget_charged`] | the channel's buffers are reserved while it lives, and a denied reservation fails the handshake |

use super::support::{
    assert_same_bytes, boxed_memory_pair, boxed_tcp_pair, eventually_within, pattern, step,
    tcp_pair, within, CountingBudget, PROMPT, STEP_TIMEOUT,
};
use crate::io::BoxedIo;
use crate::security::{SecuredConnection, SecurityError, SecurityUpgrade};
use crate::Budget;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// What the implementation under test supports, for the checks that depend on it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SecurityOptions {
    /// Whether the implementation negotiates the muxer inside its handshake
    /// (Noise extensions, TLS ALPN). When `false`, [`inlined_muxer`] checks that no
    /// muxer is ever reported instead.
    pub inlined_muxers: bool,
    /// Whether the implementation charges its buffers to the memory budget the
    /// upgrader passes (every implementation a host uses must; a test-only protocol
    /// without buffers may not). When `false`, [`budget_charged`] is skipped.
    pub charges_buffers: bool,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        SecurityOptions {
            inlined_muxers: true,
            charges_buffers: true,
        }
    }
}

impl SecurityOptions {
    /// Sets whether the implementation supports inlined muxer negotiation.
    pub fn inlined_muxers(mut self, supported: bool) -> Self {
        self.inlined_muxers = supported;
        self
    }

    /// Sets whether the implementation charges its buffers to the memory budget.
    pub fn charges_buffers(mut self, charges: bool) -> Self {
        self.charges_buffers = charges;
        self
    }
}

/// Runs every check of this module with the default [`SecurityOptions`] (inlined
/// muxer negotiation supported).
///
/// # Panics
///
/// When the implementation breaks a promise; the message names it.
pub async fn run_all(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    run_all_with(make, SecurityOptions::default()).await;
}

/// Runs every check of this module.
///
/// # Panics
///
/// When the implementation breaks a promise; the message names it.
pub async fn run_all_with(
    make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>,
    options: SecurityOptions,
) {
    handshake_over_tcp(&make).await;
    handshake_over_memory(&make).await;
    key_types(&make).await;
    expected_peer_mismatch(&make).await;
    large_transfer(&make).await;
    half_close(&make).await;
    close_and_drop(&make).await;
    inlined_muxer(&make, options.inlined_muxers).await;
    garbage_input(&make).await;
    budget_given_back(&make).await;
    if options.charges_buffers {
        budget_charged(&make).await;
    }
}

/// One side of a test connection: an identity and the implementation built for it.
struct Node {
    keypair: Keypair,
    upgrade: Arc<dyn SecurityUpgrade>,
}

impl Node {
    fn new(make: &impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>, keypair: Keypair) -> Self {
        let upgrade = make(keypair.clone());
        Node { keypair, upgrade }
    }

    fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }
}

type Outcome = Result<SecuredConnection, SecurityError>;

/// Runs both sides of a handshake at once over the given ends.
async fn handshake(
    initiator: &Node,
    responder: &Node,
    ios: (BoxedIo, BoxedIo),
    expected: Option<PeerId>,
    muxers: (&[String], &[String]),
) -> (Outcome, Outcome) {
    let (initiator_io, responder_io) = ios;
    step(
        "the handshake (both roles running at once)",
        futures::future::join(
            initiator
                .upgrade
                .secure_outbound(initiator_io, expected, muxers.0),
            responder.upgrade.secure_inbound(responder_io, muxers.1),
        ),
    )
    .await
}

/// Unwraps a handshake outcome that must have succeeded.
fn must_succeed(side: &str, outcome: Outcome) -> SecuredConnection {
    match outcome {
        Ok(secured) => secured,
        Err(error) => panic!("the {side} handshake failed: {error}"),
    }
}

/// Checks that each side proved the other's identity.
fn check_identities(
    initiator: &Node,
    responder: &Node,
    at_initiator: &SecuredConnection,
    at_responder: &SecuredConnection,
) {
    assert_eq!(
        at_initiator.remote_peer,
        responder.peer_id(),
        "the initiator reported the wrong remote PeerId"
    );
    assert_eq!(
        at_initiator.remote_public_key,
        responder.keypair.public(),
        "the initiator reported the wrong remote public key"
    );
    assert_eq!(
        at_responder.remote_peer,
        initiator.peer_id(),
        "the responder reported the wrong remote PeerId"
    );
    assert_eq!(
        at_responder.remote_public_key,
        initiator.keypair.public(),
        "the responder reported the wrong remote public key"
    );
}

/// Sends a short message each way at the same time and checks both arrive.
async fn exchange(what: &str, a: &mut BoxedIo, b: &mut BoxedIo) {
    let to_b = pattern(1000, 1);
    let to_a = pattern(1500, 2);
    let (at_a, at_b) = step(
        what,
        futures::future::join(send_and_receive(a, &to_b, to_a.len()), async {
            send_and_receive(b, &to_a, to_b.len()).await
        }),
    )
    .await;
    let at_a = at_a.unwrap_or_else(|e| panic!("{what}: i/o error on the initiator side: {e}"));
    let at_b = at_b.unwrap_or_else(|e| panic!("{what}: i/o error on the responder side: {e}"));
    assert_same_bytes(&format!("{what}: at the initiator"), &at_a, &to_a);
    assert_same_bytes(&format!("{what}: at the responder"), &at_b, &to_b);
}

async fn send_and_receive(
    io: &mut BoxedIo,
    message: &[u8],
    expect_len: usize,
) -> std::io::Result<Vec<u8>> {
    io.write_all(message).await?;
    io.flush().await?;
    let mut received = vec![0; expect_len];
    io.read_exact(&mut received).await?;
    Ok(received)
}

/// Reads until EOF, failing if more than `limit` bytes arrive.
async fn read_all(io: &mut (impl AsyncRead + Unpin), limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
        if out.len() > limit {
            return Err(std::io::Error::other("more data than the test sent"));
        }
    }
}

/// Completes the handshake in both roles over real TCP on 127.0.0.1, with and
/// without an expected peer, and checks the reported identities and that data flows.
///
/// # Panics
///
/// When a handshake fails, reports the wrong peer or key, or the channel loses data.
pub async fn handshake_over_tcp(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    assert!(
        a.upgrade.protocol_id().starts_with('/'),
        "protocol_id() must be a multistream-select id starting with '/', got {:?}",
        a.upgrade.protocol_id()
    );
    for (initiator, responder) in [(&a, &b), (&b, &a)] {
        for expected in [Some(responder.peer_id()), None] {
            let (at_i, at_r) = handshake(
                initiator,
                responder,
                boxed_tcp_pair().await,
                expected,
                (&[], &[]),
            )
            .await;
            let mut at_i = must_succeed("initiator", at_i);
            let mut at_r = must_succeed("responder", at_r);
            check_identities(initiator, responder, &at_i, &at_r);
            exchange("data after a TCP handshake", &mut at_i.io, &mut at_r.io).await;
        }
    }
}

/// Completes the handshake in both roles over an in-memory pipe and checks the
/// reported identities and that data flows.
///
/// # Panics
///
/// When a handshake fails, reports the wrong peer, or the channel loses data.
pub async fn handshake_over_memory(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    for (initiator, responder) in [(&a, &b), (&b, &a)] {
        let (at_i, at_r) = handshake(
            initiator,
            responder,
            boxed_memory_pair(),
            Some(responder.peer_id()),
            (&[], &[]),
        )
        .await;
        let mut at_i = must_succeed("initiator", at_i);
        let mut at_r = must_succeed("responder", at_r);
        check_identities(initiator, responder, &at_i, &at_r);
        exchange(
            "data after an in-memory handshake",
            &mut at_i.io,
            &mut at_r.io,
        )
        .await;
    }
}

/// Proves Ed25519, Secp256k1 and ECDSA identities, each as initiator and as
/// responder, against an Ed25519 peer.
///
/// # Panics
///
/// When a handshake with one of these key types fails or reports the wrong peer.
pub async fn key_types(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let ed25519 = Node::new(&make, Keypair::generate_ed25519());
    for (name, keypair) in [
        ("ed25519", Keypair::generate_ed25519()),
        ("secp256k1", Keypair::generate_secp256k1()),
        ("ecdsa", Keypair::generate_ecdsa()),
    ] {
        let other = Node::new(&make, keypair);
        for (initiator, responder) in [(&other, &ed25519), (&ed25519, &other)] {
            let (at_i, at_r) = handshake(
                initiator,
                responder,
                boxed_tcp_pair().await,
                Some(responder.peer_id()),
                (&[], &[]),
            )
            .await;
            let at_i = at_i.unwrap_or_else(|e| panic!("{name} identity: initiator failed: {e}"));
            let at_r = at_r.unwrap_or_else(|e| panic!("{name} identity: responder failed: {e}"));
            check_identities(initiator, responder, &at_i, &at_r);
        }
    }
}

/// A dialer that expects a different peer than the one that answers must fail with
/// [`SecurityError::PeerIdMismatch`] naming both peers, and the responder must not
/// hang.
///
/// # Panics
///
/// When the dialer accepts the wrong peer or fails with another error.
pub async fn expected_peer_mismatch(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    let someone_else = Keypair::generate_ed25519().public().to_peer_id();
    let (at_i, _at_r) = handshake(
        &a,
        &b,
        boxed_tcp_pair().await,
        Some(someone_else),
        (&[], &[]),
    )
    .await;
    match at_i {
        Err(SecurityError::PeerIdMismatch { expected, actual }) => {
            assert_eq!(expected, someone_else, "PeerIdMismatch.expected is wrong");
            assert_eq!(actual, b.peer_id(), "PeerIdMismatch.actual is wrong");
        }
        Err(other) => panic!("expected-peer mismatch: wanted PeerIdMismatch, got {other:?}"),
        Ok(secured) => panic!(
            "expected-peer mismatch: the dialer accepted {} although it expected {someone_else}",
            secured.remote_peer
        ),
    }
}

/// Sends 8 MiB each way at the same time over TCP and checks every byte.
///
/// # Panics
///
/// When data is lost, corrupted or reordered, or the transfer stalls.
pub async fn large_transfer(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    const LEN: usize = 8 * 1024 * 1024;
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    let (at_i, at_r) = handshake(
        &a,
        &b,
        boxed_tcp_pair().await,
        Some(b.peer_id()),
        (&[], &[]),
    )
    .await;
    let at_i = must_succeed("initiator", at_i);
    let at_r = must_succeed("responder", at_r);
    let to_r = pattern(LEN, 10);
    let to_i = pattern(LEN, 11);
    let (mut i_read, mut i_write) = at_i.io.split();
    let (mut r_read, mut r_write) = at_r.io.split();
    let mut at_i_buf = vec![0; LEN];
    let mut at_r_buf = vec![0; LEN];
    let (w1, w2, r1, r2) = step(
        "8 MiB each way",
        futures::future::join4(
            async {
                i_write.write_all(&to_r).await?;
                i_write.flush().await
            },
            async {
                r_write.write_all(&to_i).await?;
                r_write.flush().await
            },
            i_read.read_exact(&mut at_i_buf),
            r_read.read_exact(&mut at_r_buf),
        ),
    )
    .await;
    w1.unwrap_or_else(|e| panic!("large transfer: initiator write failed: {e}"));
    w2.unwrap_or_else(|e| panic!("large transfer: responder write failed: {e}"));
    r1.unwrap_or_else(|e| panic!("large transfer: initiator read failed: {e}"));
    r2.unwrap_or_else(|e| panic!("large transfer: responder read failed: {e}"));
    assert_same_bytes("large transfer at the initiator", &at_i_buf, &to_i);
    assert_same_bytes("large transfer at the responder", &at_r_buf, &to_r);
}

/// After one side's `close()` (a half-close), the other reads all data then EOF,
/// and can still send an answer that the closing side reads; in both roles.
///
/// # Panics
///
/// When EOF does not arrive, data is lost, or the half-closed side cannot read.
pub async fn half_close(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    for initiator_closes_first in [true, false] {
        let (at_i, at_r) = handshake(
            &a,
            &b,
            boxed_tcp_pair().await,
            Some(b.peer_id()),
            (&[], &[]),
        )
        .await;
        let at_i = must_succeed("initiator", at_i);
        let at_r = must_succeed("responder", at_r);
        let (mut first, mut second) = if initiator_closes_first {
            (at_i.io, at_r.io)
        } else {
            (at_r.io, at_i.io)
        };
        let request = pattern(100_000, 20);
        let reply = pattern(70_000, 21);
        let (first_got, second_got) = step(
            "half-close",
            futures::future::join(
                async {
                    first.write_all(&request).await?;
                    first.close().await?;
                    read_all(&mut first, reply.len()).await
                },
                async {
                    let got = read_all(&mut second, request.len()).await?;
                    second.write_all(&reply).await?;
                    second.close().await?;
                    Ok::<_, std::io::Error>(got)
                },
            ),
        )
        .await;
        let first_got =
            first_got.unwrap_or_else(|e| panic!("half-close: the closing side failed: {e}"));
        let second_got =
            second_got.unwrap_or_else(|e| panic!("half-close: the other side failed: {e}"));
        assert_same_bytes("half-close: data before EOF", &second_got, &request);
        assert_same_bytes("half-close: the answer after EOF", &first_got, &reply);
    }
}

/// When one side closes its channel, or drops it without closing, the other side's
/// pending read returns promptly (EOF after a close; EOF or an error after a drop).
///
/// # Panics
///
/// When the remote read hangs or a graceful close is reported as an error.
pub async fn close_and_drop(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    for graceful in [true, false] {
        for initiator_leaves in [true, false] {
            let (at_i, at_r) = handshake(
                &a,
                &b,
                boxed_tcp_pair().await,
                Some(b.peer_id()),
                (&[], &[]),
            )
            .await;
            let at_i = must_succeed("initiator", at_i);
            let at_r = must_succeed("responder", at_r);
            let (mut leaving, mut staying) = if initiator_leaves {
                (at_i.io, at_r.io)
            } else {
                (at_r.io, at_i.io)
            };
            let leave = async move {
                if graceful {
                    leaving
                        .close()
                        .await
                        .unwrap_or_else(|e| panic!("close(): {e}"));
                }
                drop(leaving);
            };
            let what = if graceful {
                "a read after the remote closed"
            } else {
                "a read after the remote dropped the channel"
            };
            let mut buf = [0u8; 16];
            let (read, ()) = within(
                PROMPT,
                what,
                futures::future::join(staying.read(&mut buf), leave),
            )
            .await;
            match read {
                Ok(0) => {}
                Ok(n) => panic!("{what}: returned {n} bytes that were never sent"),
                Err(e) if graceful => panic!("{what}: wanted EOF, got the error {e}"),
                Err(_) => {}
            }
        }
    }
}

/// Muxer agreement inside the handshake (Noise extensions, TLS ALPN).
///
/// With `supported`, checks that the result is the first muxer of the initiator's
/// list that the responder also offers, reported identically on both sides, that an
/// empty list on either side means no inlined muxer (`None`), and that lists without
/// overlap do not produce a muxer (the handshake may fail, as the Noise spec asks,
/// or fall back to `None`, as TLS must). Without `supported`, checks that `None` is
/// always reported.
///
/// # Panics
///
/// When a side reports a muxer the rules above do not give, or the sides disagree.
pub async fn inlined_muxer(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>, supported: bool) {
    const YAMUX: &str = "/yamux/1.0.0";
    const MPLEX: &str = "/mplex/6.7.0";
    let list = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    let cases: [(Vec<String>, Vec<String>, Option<&str>); 5] = [
        (list(&[YAMUX]), list(&[YAMUX]), Some(YAMUX)),
        (list(&[MPLEX, YAMUX]), list(&[YAMUX, MPLEX]), Some(MPLEX)),
        (list(&[YAMUX]), list(&[MPLEX, YAMUX]), Some(YAMUX)),
        (list(&[]), list(&[YAMUX]), None),
        (list(&[YAMUX]), list(&[]), None),
    ];
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    for (offered, accepted, agreed) in cases {
        let want = if supported { agreed } else { None };
        let (at_i, at_r) = handshake(
            &a,
            &b,
            boxed_tcp_pair().await,
            Some(b.peer_id()),
            (&offered, &accepted),
        )
        .await;
        let case = format!("inlined muxer, initiator offers {offered:?}, responder {accepted:?}");
        let mut at_i = at_i.unwrap_or_else(|e| panic!("{case}: initiator failed: {e}"));
        let mut at_r = at_r.unwrap_or_else(|e| panic!("{case}: responder failed: {e}"));
        assert_eq!(
            at_i.muxer.as_deref(),
            want,
            "{case}: wrong muxer at the initiator"
        );
        assert_eq!(
            at_r.muxer.as_deref(),
            want,
            "{case}: wrong muxer at the responder"
        );
        exchange(&case, &mut at_i.io, &mut at_r.io).await;
    }

    // No overlap: fail, or agree on no muxer.
    let (at_i, at_r) = handshake(
        &a,
        &b,
        boxed_tcp_pair().await,
        Some(b.peer_id()),
        (&list(&["/weft/test-a/1"]), &list(&["/weft/test-b/1"])),
    )
    .await;
    if let Ok(secured) = &at_i {
        assert_eq!(
            secured.muxer, None,
            "inlined muxer without overlap: the initiator reported a muxer"
        );
    }
    if let Ok(secured) = &at_r {
        assert_eq!(
            secured.muxer, None,
            "inlined muxer without overlap: the responder reported a muxer"
        );
    }
}

/// Feeds garbage (random bytes, all-ones, all-zeros, a multistream-select header,
/// or nothing at all) to each role, then closes the write side: the handshake must
/// fail with an error, and promptly, not succeed and not hang.
///
/// # Panics
///
/// When a handshake accepts garbage or does not return.
pub async fn garbage_input(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let node = Node::new(&make, Keypair::generate_ed25519());
    let mss_header = b"\x13/multistream/1.0.0\n".to_vec();
    let garbage: [(&str, Vec<u8>); 5] = [
        ("random bytes", pattern(4096, 30)),
        ("0xff bytes", vec![0xff; 4096]),
        ("zero bytes", vec![0; 4096]),
        ("a multistream-select header", mss_header),
        ("an immediate EOF", Vec::new()),
    ];
    for (name, bytes) in garbage {
        for initiator in [true, false] {
            let (ours, theirs) = tcp_pair().await;
            let ours: BoxedIo = Box::new(ours.compat());
            let what = format!(
                "a handshake as {} fed {name}",
                if initiator { "initiator" } else { "responder" }
            );
            // The attacker runs on its own task, so a handshake that wrongly succeeds
            // is reported as such rather than as a hang.
            let bytes = bytes.clone();
            let attacker = tokio::spawn(async move {
                let mut theirs = theirs;
                // Errors are fine here: the side under test may hang up at any time.
                let _ = theirs.write_all(&bytes).await;
                let _ = theirs.shutdown().await;
                let mut sink = vec![0; 64 * 1024];
                while let Ok(n) = theirs.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
            let handshake = async {
                if initiator {
                    node.upgrade.secure_outbound(ours, None, &[]).await
                } else {
                    node.upgrade.secure_inbound(ours, &[]).await
                }
            };
            let outcome = within(STEP_TIMEOUT, &what, handshake).await;
            attacker.abort();
            if let Ok(secured) = outcome {
                panic!(
                    "{what}: the handshake succeeded, proving peer {}",
                    secured.remote_peer
                );
            }
        }
    }
}

/// Runs a budgeted handshake (the calls the upgrader makes) between `a` and `b`,
/// both roles at once over TCP, `a` expecting `expected`.
async fn budgeted_handshake(
    what: &str,
    (a, budget_a): (&Node, Budget),
    (b, budget_b): (&Node, Budget),
    expected: PeerId,
) -> (Outcome, Outcome) {
    let (io_a, io_b) = boxed_tcp_pair().await;
    step(
        what,
        futures::future::join(
            a.upgrade
                .secure_outbound_with_budget(io_a, Some(expected), &[], budget_a),
            b.upgrade.secure_inbound_with_budget(io_b, &[], budget_b),
        ),
    )
    .await
}

/// The budgeted handshake calls (the ones the upgrader makes) work, and whatever
/// they reserve comes back when the channels are dropped, and after a failed
/// handshake.
///
/// # Panics
///
/// When a budgeted handshake fails, memory stays reserved, or more is given back
/// than was reserved.
pub async fn budget_given_back(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    let (at_a, budget_a) = CountingBudget::new(usize::MAX / 2);
    let (at_b, budget_b) = CountingBudget::new(usize::MAX / 2);
    let (outcome_a, outcome_b) = budgeted_handshake(
        "the budgeted handshake (both roles running at once)",
        (&a, budget_a),
        (&b, budget_b),
        b.peer_id(),
    )
    .await;
    let mut secured_a = must_succeed("budgeted initiator", outcome_a);
    let mut secured_b = must_succeed("budgeted responder", outcome_b);
    check_identities(&a, &b, &secured_a, &secured_b);
    exchange(
        "data after a budgeted handshake",
        &mut secured_a.io,
        &mut secured_b.io,
    )
    .await;
    drop((secured_a, secured_b));
    eventually_within("budget: the channels give back their memory", || {
        at_a.used() == 0 && at_b.used() == 0
    })
    .await;
    // A handshake that fails (the wrong peer expected) gives everything back too.
    let (at_a, budget_a) = CountingBudget::new(usize::MAX / 2);
    let (at_b, budget_b) = CountingBudget::new(usize::MAX / 2);
    let wrong = Keypair::generate_ed25519().public().to_peer_id();
    let (outcome_a, outcome_b) = budgeted_handshake(
        "a budgeted handshake expecting the wrong peer",
        (&a, budget_a),
        (&b, budget_b),
        wrong,
    )
    .await;
    assert!(
        outcome_a.is_err(),
        "budget: the initiator accepted the wrong peer"
    );
    drop((outcome_a, outcome_b));
    eventually_within("budget: failed handshakes give back their memory", || {
        at_a.used() == 0 && at_b.used() == 0
    })
    .await;
}

/// The channel's buffers are charged to the budget the upgrader passes: something
/// is reserved on both ends while the channel lives (and a transfer through it
/// works), all of it is given back when it is dropped, and a budget too small for
/// the handshake's buffers fails the handshake, on both ends, with an error that
/// says the memory budget denied it.
///
/// # Panics
///
/// When nothing is reserved, memory stays reserved after the drop, or a denied
/// reservation does not fail the handshake with such an error.
pub async fn budget_charged(make: impl Fn(Keypair) -> Arc<dyn SecurityUpgrade>) {
    let a = Node::new(&make, Keypair::generate_ed25519());
    let b = Node::new(&make, Keypair::generate_ed25519());
    let (at_a, budget_a) = CountingBudget::new(1 << 20);
    let (at_b, budget_b) = CountingBudget::new(1 << 20);
    let (outcome_a, outcome_b) = budgeted_handshake(
        "a handshake with a 1 MiB budget each (both roles running at once)",
        (&a, budget_a),
        (&b, budget_b),
        b.peer_id(),
    )
    .await;
    let mut secured_a = must_succeed("budgeted initiator", outcome_a);
    let mut secured_b = must_succeed("budgeted responder", outcome_b);
    for (side, used) in [("initiator", &at_a), ("responder", &at_b)] {
        assert!(
            used.used() > 0,
            "budget: the live channel of the {side} reserves nothing"
        );
    }
    let data = pattern(300_000, 7);
    let writer = async {
        secured_a.io.write_all(&data).await?;
        secured_a.io.close().await
    };
    let (written, received) = step(
        "300 KB through the budgeted channel",
        futures::future::join(writer, read_all(&mut secured_b.io, data.len())),
    )
    .await;
    written.expect("budget: writing through the budgeted channel failed");
    let received = received.expect("budget: reading through the budgeted channel failed");
    assert_same_bytes(
        "budget: 300 KB through the budgeted channel",
        &received,
        &data,
    );
    drop((secured_a, secured_b));
    eventually_within(
        "budget: the dropped channels give back their memory",
        || at_a.used() == 0 && at_b.used() == 0,
    )
    .await;

    let (_, budget_a) = CountingBudget::new(1 << 20);
    let (at_b, budget_b) = CountingBudget::new(1024);
    let (outcome_a, outcome_b) = budgeted_handshake(
        "a handshake whose responder has a 1 KiB budget",
        (&a, budget_a),
        (&b, budget_b),
        b.peer_id(),
    )
    .await;
    match outcome_b {
        Ok(_) => panic!("budget: a handshake without memory succeeded"),
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.contains("memory budget denied"),
                "budget: a denied reservation failed the handshake without saying so: {text}"
            );
        }
    }
    assert!(
        outcome_a.is_err(),
        "budget: the initiator did not see the responder's denied handshake fail"
    );
    assert_eq!(
        at_b.used(),
        0,
        "budget: a denied handshake kept memory reserved"
    );
}
