//! Conformance checks for [`StreamMuxer`] implementations.
//!
//! Every check takes a factory that builds the implementation under test:
//! `|| Arc::new(MyMuxer::default()) as _`. Two instances are connected over a real
//! TCP connection on 127.0.0.1 (no security layer: the muxer must not care), one as
//! [`Role::Initiator`] and one as [`Role::Responder`], with both drivers spawned.
//! [`run_all`] runs them all; each is also public, to run as a separate test.
//!
//! | check | promise |
//! |---|---|
//! | [`open_accept_both_roles`] | either side opens, the other accepts, data flows both ways |
//! | [`many_streams`] | 128 + 64 concurrent streams, opened from both sides, echo intact |
//! | [`half_close`] | after `close()` the remote reads EOF and can still answer; our writes fail |
//! | [`large_transfer`] | 8 MiB each way at once on one stream arrive intact |
//! | [`backpressure`] | a receiver that does not read bounds what the sender can write |
//! | [`reset`] | a reset ends the remote's reads promptly and makes its writes fail |
//! | [`connection_drop`] | a dead TCP connection fails streams, accepts and the driver promptly |
//! | [`close`] | `close()` makes both sides report [`MuxerError::Closed`] and drivers end |

use super::support::{
    assert_same_bytes, eventually_within, pattern, step, tcp_pair, within, CountingBudget, PROMPT,
};
use crate::budget::Budget;
use crate::muxer::{BoxedStream, Muxed, MuxedConnection, MuxerError, StreamMuxer};
use crate::role::Role;
use futures::future::join_all;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Runs every check of this module.
///
/// # Panics
///
/// When the implementation breaks a promise; the message names it.
pub async fn run_all(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    open_accept_both_roles(&make).await;
    many_streams(&make).await;
    half_close(&make).await;
    large_transfer(&make).await;
    backpressure(&make).await;
    reset(&make).await;
    connection_drop(&make).await;
    close(&make).await;
    budget_given_back(&make).await;
}

/// A labelled direction: (label, opening side, accepting side).
type Side = (
    &'static str,
    Arc<dyn MuxedConnection>,
    Arc<dyn MuxedConnection>,
);

/// Two muxed connections joined by TCP, with their drivers running.
struct Pair {
    initiator: Arc<dyn MuxedConnection>,
    responder: Arc<dyn MuxedConnection>,
    initiator_driver: JoinHandle<Result<(), MuxerError>>,
    responder_driver: JoinHandle<Result<(), MuxerError>>,
    /// A second handle on the responder's socket, to cut the TCP connection under
    /// the muxer's feet.
    responder_socket: std::net::TcpStream,
    /// Echo servers and other helpers to stop at the end.
    tasks: Vec<JoinHandle<()>>,
}

impl Pair {
    async fn connect(make: &impl Fn() -> Arc<dyn StreamMuxer>) -> Pair {
        Pair::connect_with(make, Budget::unlimited(), Budget::unlimited()).await
    }

    /// As [`Pair::connect`], each side charging its budget (the upgrader's call).
    async fn connect_with(
        make: &impl Fn() -> Arc<dyn StreamMuxer>,
        initiator_budget: Budget,
        responder_budget: Budget,
    ) -> Pair {
        let (dialed, accepted) = tcp_pair().await;
        let accepted = accepted
            .into_std()
            .expect("test suite: take the socket out of tokio");
        let responder_socket = accepted
            .try_clone()
            .expect("test suite: clone the responder's socket");
        let accepted = tokio::net::TcpStream::from_std(accepted)
            .expect("test suite: give the socket back to tokio");

        let initiator_muxer = make();
        let responder_muxer = make();
        assert!(
            initiator_muxer.protocol_id().starts_with('/'),
            "protocol_id() must be a multistream-select id starting with '/', got {:?}",
            initiator_muxer.protocol_id()
        );
        let Muxed {
            connection: initiator,
            driver: initiator_driver,
        } = initiator_muxer
            .upgrade_with_budget(Box::new(dialed.compat()), Role::Initiator, initiator_budget)
            .unwrap_or_else(|e| panic!("upgrade as initiator failed: {e}"));
        let Muxed {
            connection: responder,
            driver: responder_driver,
        } = responder_muxer
            .upgrade_with_budget(
                Box::new(accepted.compat()),
                Role::Responder,
                responder_budget,
            )
            .unwrap_or_else(|e| panic!("upgrade as responder failed: {e}"));
        Pair {
            initiator,
            responder,
            initiator_driver: tokio::spawn(initiator_driver),
            responder_driver: tokio::spawn(responder_driver),
            responder_socket,
            tasks: Vec::new(),
        }
    }

    /// Both sides, initiator first, labelled.
    fn sides(&self) -> [Side; 2] {
        [
            (
                "initiator opens",
                self.initiator.clone(),
                self.responder.clone(),
            ),
            (
                "responder opens",
                self.responder.clone(),
                self.initiator.clone(),
            ),
        ]
    }

    /// Accepts every inbound stream on `connection` and echoes it: reads to EOF,
    /// writes everything back, closes.
    fn serve_echo(&mut self, connection: Arc<dyn MuxedConnection>) {
        self.tasks.push(tokio::spawn(async move {
            while let Ok(mut stream) = connection.accept_stream().await {
                tokio::spawn(async move {
                    if let Ok(data) = read_all(&mut stream, 1 << 20).await {
                        let _ = stream.write_all(&data).await;
                        let _ = stream.close().await;
                    }
                });
            }
        }));
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
        self.initiator_driver.abort();
        self.responder_driver.abort();
    }
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

/// Opens a stream, sends `data`, half-closes and reads the answer to EOF.
async fn round_trip(
    connection: &dyn MuxedConnection,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut stream = connection
        .open_stream()
        .await
        .map_err(|e| format!("open_stream: {e}"))?;
    stream
        .write_all(data)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.close().await.map_err(|e| format!("close: {e}"))?;
    read_all(&mut stream, limit)
        .await
        .map_err(|e| format!("read: {e}"))
}

/// Polls `condition` until it holds, panicking with `what` after [`PROMPT`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    within(PROMPT, what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Writes small chunks until a write fails, panicking if none does within [`PROMPT`].
async fn writes_fail(what: &str, stream: &mut BoxedStream) {
    within(PROMPT, what, async {
        loop {
            let result = async {
                stream.write_all(b"are you still there?").await?;
                stream.flush().await
            }
            .await;
            if result.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Checks that a pending or next read ends promptly with EOF or an error, never data.
async fn read_ends(what: &str, stream: &mut BoxedStream) {
    let mut buf = [0u8; 64];
    match within(PROMPT, what, stream.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{what}: read {n} bytes nobody sent"),
    }
}

/// Opens a stream from each side in turn; the other side accepts it; a request and
/// an answer cross it.
///
/// # Panics
///
/// When opening or accepting fails or the data differs.
pub async fn open_accept_both_roles(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    let pair = Pair::connect(&make).await;
    for (case, opener, acceptor) in pair.sides() {
        let request = pattern(10_000, 1);
        let answer = pattern(20_000, 2);
        let (at_opener, at_acceptor) = step(
            case,
            futures::future::join(round_trip(&*opener, &request, answer.len()), async {
                let mut stream = acceptor
                    .accept_stream()
                    .await
                    .map_err(|e| format!("accept_stream: {e}"))?;
                let got = read_all(&mut stream, request.len())
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                stream
                    .write_all(&answer)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                stream.close().await.map_err(|e| format!("close: {e}"))?;
                Ok::<_, String>(got)
            }),
        )
        .await;
        let at_opener = at_opener.unwrap_or_else(|e| panic!("{case}: opening side: {e}"));
        let at_acceptor = at_acceptor.unwrap_or_else(|e| panic!("{case}: accepting side: {e}"));
        assert_same_bytes(&format!("{case}: request"), &at_acceptor, &request);
        assert_same_bytes(&format!("{case}: answer"), &at_opener, &answer);
    }
    pair.stop();
}

/// Opens 128 streams from the initiator and 64 from the responder, all at once,
/// each echoed by the other side with its own data, and checks every byte.
///
/// # Panics
///
/// When a stream fails or gets another stream's data.
pub async fn many_streams(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    let mut pair = Pair::connect(&make).await;
    pair.serve_echo(pair.initiator.clone());
    pair.serve_echo(pair.responder.clone());
    let mut trips = Vec::new();
    for (opener, count, seed) in [
        (pair.initiator.clone(), 128u64, 1000u64),
        (pair.responder.clone(), 64, 2000),
    ] {
        for i in 0..count {
            let opener = opener.clone();
            trips.push(async move {
                let len = 1000 + (i as usize * 97) % 15_000;
                let data = pattern(len, seed + i);
                let result = round_trip(&*opener, &data, len).await;
                (seed + i, data, result)
            });
        }
    }
    let results = step("192 concurrent echo streams", join_all(trips)).await;
    for (id, sent, result) in results {
        let echoed = result.unwrap_or_else(|e| panic!("concurrent stream {id}: {e}"));
        assert_same_bytes(&format!("concurrent stream {id}"), &echoed, &sent);
    }
    pair.stop();
}

/// After the opener's `close()` (a half-close), the acceptor reads all data then
/// EOF, still writes an answer that the opener reads, and the opener's own writes
/// fail; from both sides.
///
/// # Panics
///
/// When EOF does not arrive, the answer is lost, or a write after close succeeds.
pub async fn half_close(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    let pair = Pair::connect(&make).await;
    for (case, opener, acceptor) in pair.sides() {
        let request = pattern(300_000, 3);
        let answer = pattern(400_000, 4);
        let (at_opener, at_acceptor) = step(
            case,
            futures::future::join(
                async {
                    let mut stream = opener
                        .open_stream()
                        .await
                        .map_err(|e| format!("open_stream: {e}"))?;
                    stream
                        .write_all(&request)
                        .await
                        .map_err(|e| format!("write: {e}"))?;
                    stream.close().await.map_err(|e| format!("close: {e}"))?;
                    let write_after_close = async {
                        stream.write_all(b"too late").await?;
                        stream.flush().await
                    }
                    .await;
                    if write_after_close.is_ok() {
                        return Err("a write after close() succeeded".to_string());
                    }
                    read_all(&mut stream, answer.len())
                        .await
                        .map_err(|e| format!("read after close: {e}"))
                },
                async {
                    let mut stream = acceptor
                        .accept_stream()
                        .await
                        .map_err(|e| format!("accept_stream: {e}"))?;
                    let got = read_all(&mut stream, request.len())
                        .await
                        .map_err(|e| format!("read to EOF: {e}"))?;
                    stream
                        .write_all(&answer)
                        .await
                        .map_err(|e| format!("write after the remote's EOF: {e}"))?;
                    stream.close().await.map_err(|e| format!("close: {e}"))?;
                    Ok::<_, String>(got)
                },
            ),
        )
        .await;
        let at_opener = at_opener.unwrap_or_else(|e| panic!("half-close, {case}: opener: {e}"));
        let at_acceptor =
            at_acceptor.unwrap_or_else(|e| panic!("half-close, {case}: acceptor: {e}"));
        assert_same_bytes(&format!("half-close, {case}: data"), &at_acceptor, &request);
        assert_same_bytes(&format!("half-close, {case}: answer"), &at_opener, &answer);
    }
    pair.stop();
}

/// Sends 8 MiB each way at the same time over one stream and checks every byte.
///
/// # Panics
///
/// When data is lost, corrupted or reordered, or the transfer stalls.
pub async fn large_transfer(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    const LEN: usize = 8 * 1024 * 1024;
    let pair = Pair::connect(&make).await;
    let up = pattern(LEN, 5);
    let down = pattern(LEN, 6);
    let both_ways = |stream: BoxedStream, send: Vec<u8>| async move {
        let (mut reader, mut writer) = stream.split();
        let (sent, received) = futures::future::join(
            async {
                writer.write_all(&send).await?;
                writer.close().await
            },
            read_all(&mut reader, LEN),
        )
        .await;
        sent?;
        received
    };
    let (at_opener, at_acceptor) = step(
        "8 MiB each way on one stream",
        futures::future::join(
            async {
                let stream = pair
                    .initiator
                    .open_stream()
                    .await
                    .map_err(std::io::Error::other)?;
                both_ways(stream, up.clone()).await
            },
            async {
                let stream = pair
                    .responder
                    .accept_stream()
                    .await
                    .map_err(std::io::Error::other)?;
                both_ways(stream, down.clone()).await
            },
        ),
    )
    .await;
    let at_opener = at_opener.unwrap_or_else(|e| panic!("large transfer: opener: {e}"));
    let at_acceptor = at_acceptor.unwrap_or_else(|e| panic!("large transfer: acceptor: {e}"));
    assert_same_bytes("large transfer, upstream", &at_acceptor, &up);
    assert_same_bytes("large transfer, downstream", &at_opener, &down);
    pair.stop();
}

/// A receiver that accepts a stream but does not read must stop the sender: writes
/// stall after a bounded amount (at most 4 MiB; yamux's window is 256 KiB). Once
/// the receiver reads, everything arrives intact.
///
/// # Panics
///
/// When the sender can write 4 MiB into a stream nobody reads, or data is lost.
pub async fn backpressure(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    const BOUND: usize = 4 * 1024 * 1024;
    const TOTAL: usize = 2 * BOUND;
    const CHUNK: usize = 16 * 1024;
    let pair = Pair::connect(&make).await;
    let data = pattern(TOTAL, 7);
    let mut sender = step("open_stream", pair.initiator.open_stream())
        .await
        .unwrap_or_else(|e| panic!("backpressure: open_stream: {e}"));
    // Announce the stream, then have the receiver accept it and never read.
    step("first write", sender.write_all(&data[..CHUNK]))
        .await
        .unwrap_or_else(|e| panic!("backpressure: first write: {e}"));
    let _ = step("flush", sender.flush()).await;
    let mut receiver = step("accept_stream", pair.responder.accept_stream())
        .await
        .unwrap_or_else(|e| panic!("backpressure: accept_stream: {e}"));

    let mut written = CHUNK;
    let mut stalled = false;
    while written < TOTAL {
        let end = (written + CHUNK).min(TOTAL);
        let chunk = data.get(written..end).unwrap_or_default();
        match tokio::time::timeout(Duration::from_millis(500), sender.write(chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("backpressure: write failed: {e}"),
            Err(_) => {
                stalled = true;
                break;
            }
        }
    }
    assert!(
        stalled && written <= BOUND,
        "backpressure: the sender wrote {written} bytes to a stream whose receiver \
         does not read (bound {BOUND}) without being held back"
    );

    // Now read: the sender must be released and every byte arrive in order.
    let rest = data.get(written..).unwrap_or_default().to_vec();
    let (sent, received) = step(
        "draining a backpressured stream",
        futures::future::join(
            async {
                sender.write_all(&rest).await?;
                sender.close().await
            },
            read_all(&mut receiver, TOTAL),
        ),
    )
    .await;
    sent.unwrap_or_else(|e| panic!("backpressure: writing after the receiver read: {e}"));
    let received = received.unwrap_or_else(|e| panic!("backpressure: reading: {e}"));
    assert_same_bytes("backpressure: data after the stall", &received, &data);
    pair.stop();
}

/// A reset from either end reaches the other promptly: its pending read ends (an
/// error is what the trait promises; EOF is tolerated because the `yamux` crate
/// cannot tell a reset from a close) and its writes fail.
///
/// # Panics
///
/// When the remote read hangs or delivers data, or the remote can keep writing.
pub async fn reset(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    let pair = Pair::connect(&make).await;
    for (case, opener, acceptor) in pair.sides() {
        for opener_resets in [true, false] {
            let mut opened = step("open_stream", opener.open_stream())
                .await
                .unwrap_or_else(|e| panic!("reset, {case}: open_stream: {e}"));
            step("write", async {
                opened.write_all(b"hello").await?;
                opened.flush().await
            })
            .await
            .unwrap_or_else(|e| panic!("reset, {case}: write: {e}"));
            let mut accepted = step("accept_stream", acceptor.accept_stream())
                .await
                .unwrap_or_else(|e| panic!("reset, {case}: accept_stream: {e}"));
            let mut hello = [0u8; 5];
            step("read", accepted.read_exact(&mut hello))
                .await
                .unwrap_or_else(|e| panic!("reset, {case}: read: {e}"));

            let (resetting, mut remote) = if opener_resets {
                (opened, accepted)
            } else {
                (accepted, opened)
            };
            let who = if opener_resets { "opener" } else { "acceptor" };
            let what = format!("reset by the {who}, {case}");
            // The remote is already waiting in a read when the reset happens.
            let mut resetting = resetting;
            let mut buf = [0u8; 64];
            let (read, ()) = within(
                PROMPT,
                &format!("{what}: the remote's pending read"),
                futures::future::join(remote.read(&mut buf), async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    resetting.reset();
                }),
            )
            .await;
            if let Ok(n @ 1..) = read {
                panic!("{what}: the remote read {n} bytes nobody sent");
            }
            read_ends(&format!("{what}: a later read"), &mut remote).await;
            writes_fail(&format!("{what}: the remote's writes"), &mut remote).await;
        }
    }
    pair.stop();
}

/// When the TCP connection under one side dies (shut down under the muxer's feet),
/// the other side notices promptly: a pending stream read ends, stream writes fail,
/// `accept_stream` fails, `is_closed()` becomes true and its driver completes.
///
/// # Panics
///
/// When any of these hangs.
pub async fn connection_drop(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    let pair = Pair::connect(&make).await;
    let mut stream = step("open_stream", pair.initiator.open_stream())
        .await
        .unwrap_or_else(|e| panic!("connection drop: open_stream: {e}"));
    step("write", async {
        stream.write_all(b"hello").await?;
        stream.flush().await
    })
    .await
    .unwrap_or_else(|e| panic!("connection drop: write: {e}"));
    let _accepted = step("accept_stream", pair.responder.accept_stream())
        .await
        .unwrap_or_else(|e| panic!("connection drop: accept_stream: {e}"));

    let mut buf = [0u8; 64];
    let (read, ()) = within(
        PROMPT,
        "connection drop: a pending stream read",
        futures::future::join(stream.read(&mut buf), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Errors: the socket may already be gone, which is what we want anyway.
            let _ = pair.responder_socket.shutdown(std::net::Shutdown::Both);
        }),
    )
    .await;
    if let Ok(n @ 1..) = read {
        panic!("connection drop: read {n} bytes nobody sent");
    }
    writes_fail("connection drop: stream writes", &mut stream).await;
    let accept = within(
        PROMPT,
        "connection drop: accept_stream",
        pair.initiator.accept_stream(),
    )
    .await;
    assert!(
        accept.is_err(),
        "connection drop: accept_stream returned a stream on a dead connection"
    );
    let initiator = pair.initiator.clone();
    eventually("connection drop: is_closed()", || initiator.is_closed()).await;
    let Pair {
        initiator_driver,
        responder_driver,
        ..
    } = pair;
    let _ = within(
        PROMPT,
        "connection drop: the driver completes",
        initiator_driver,
    )
    .await;
    responder_driver.abort();
}

/// `close()` on one side: that side reports closed at once, its `open_stream` and
/// `accept_stream` fail, its open streams stop working; the remote's `accept_stream`
/// returns [`MuxerError::Closed`], it sees `remote_went_away()` and `is_closed()`;
/// both drivers complete.
///
/// # Panics
///
/// When any of these does not hold promptly.
pub async fn close(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    let pair = Pair::connect(&make).await;
    let mut stream = step("open_stream", pair.initiator.open_stream())
        .await
        .unwrap_or_else(|e| panic!("close: open_stream: {e}"));
    step("write", async {
        stream.write_all(b"hello").await?;
        stream.flush().await
    })
    .await
    .unwrap_or_else(|e| panic!("close: write: {e}"));
    let mut accepted = step("accept_stream", pair.responder.accept_stream())
        .await
        .unwrap_or_else(|e| panic!("close: accept_stream: {e}"));
    let mut hello = [0u8; 5];
    step("read", accepted.read_exact(&mut hello))
        .await
        .unwrap_or_else(|e| panic!("close: read: {e}"));

    step("close()", pair.initiator.close())
        .await
        .unwrap_or_else(|e| panic!("close: close() failed: {e}"));
    assert!(
        pair.initiator.is_closed(),
        "close: is_closed() is false right after close()"
    );
    assert!(
        step("open_stream after close", pair.initiator.open_stream())
            .await
            .is_err(),
        "close: open_stream succeeded after close()"
    );
    match within(
        PROMPT,
        "close: accept_stream on the closed side",
        pair.initiator.accept_stream(),
    )
    .await
    {
        Err(MuxerError::Closed) => {}
        Err(other) => panic!("close: accept_stream on the closed side: wanted Closed, got {other}"),
        Ok(_) => panic!("close: accept_stream on the closed side returned a stream"),
    }
    writes_fail("close: writes on a stream of the closed side", &mut stream).await;

    match within(
        PROMPT,
        "close: accept_stream on the remote side",
        pair.responder.accept_stream(),
    )
    .await
    {
        Err(MuxerError::Closed) => {}
        Err(other) => panic!("close: accept_stream on the remote side: wanted Closed, got {other}"),
        Ok(_) => panic!("close: accept_stream on the remote side returned a stream"),
    }
    read_ends("close: a read on the remote's stream", &mut accepted).await;
    let responder = pair.responder.clone();
    eventually("close: remote_went_away() on the remote", || {
        responder.remote_went_away()
    })
    .await;
    eventually("close: is_closed() on the remote", || responder.is_closed()).await;
    let Pair {
        initiator_driver,
        responder_driver,
        ..
    } = pair;
    let closed = within(
        PROMPT,
        "close: the closing side's driver completes",
        initiator_driver,
    )
    .await;
    if let Ok(Err(e)) = closed {
        panic!("close: the closing side's driver ended with an error after a clean close: {e}");
    }
    let _ = within(
        PROMPT,
        "close: the remote's driver completes",
        responder_driver,
    )
    .await;
}

/// Whatever a muxer charges to the budget it was upgraded with comes back: while
/// streams hold unread data some may be reserved; once the streams are read or
/// dropped and the connection is closed, nothing is.
///
/// # Panics
///
/// When memory stays reserved, or more is given back than was reserved.
pub async fn budget_given_back(make: impl Fn() -> Arc<dyn StreamMuxer>) {
    const STREAMS: usize = 8;
    const LEN: usize = 64 * 1024;
    let (initiator_budget, a) = CountingBudget::new(usize::MAX / 2);
    let (responder_budget, b) = CountingBudget::new(usize::MAX / 2);
    let pair = Pair::connect_with(&make, a, b).await;
    let data = pattern(LEN, 11);
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut out = step("open_stream", pair.initiator.open_stream())
            .await
            .unwrap_or_else(|e| panic!("budget: open_stream: {e}"));
        step("write", out.write_all(&data))
            .await
            .unwrap_or_else(|e| panic!("budget: write: {e}"));
        let _ = step("flush", out.flush()).await;
        let inbound = step("accept_stream", pair.responder.accept_stream())
            .await
            .unwrap_or_else(|e| panic!("budget: accept_stream: {e}"));
        streams.push((out, inbound));
    }
    // Half the streams are read, the others dropped unread.
    for (i, (out, mut inbound)) in streams.into_iter().enumerate() {
        if i % 2 == 0 {
            let mut got = vec![0u8; LEN];
            step("reading", inbound.read_exact(&mut got))
                .await
                .unwrap_or_else(|e| panic!("budget: read: {e}"));
            assert_same_bytes("budget: stream data", &got, &data);
        }
        drop((out, inbound));
    }
    let _ = step("close", pair.initiator.close()).await;
    eventually_within("budget: the responder gives back what it reserved", || {
        responder_budget.used() == 0
    })
    .await;
    eventually_within("budget: the initiator gives back what it reserved", || {
        initiator_budget.used() == 0
    })
    .await;
    pair.stop();
}
