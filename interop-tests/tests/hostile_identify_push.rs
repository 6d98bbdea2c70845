//! Identify-push floods (issue 13): one rust-libp2p peer opens 32
//! `/ipfs/id/push/1.0.0` streams against `weft listen` (shipped defaults) and never
//! sends a message, holding whatever slots they get. Then another peer pushes an
//! honest identify message: its push must be accepted and read (the listener's
//! slots are per peer), and the flood's streams beyond its peer's slots must get
//! `na` from multistream-select, not an accept followed by a reset.

#[path = "hostile_support/mod.rs"]
mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use support::{drain, honest_dial, propose, Answer, RawConn, RssSampler, GROWTH_BUDGET_KIB};
use weft_interop_tests::procfs::{mib, rss_kib};
use weft_interop_tests::WeftListen;

const PUSH: &str = "/ipfs/id/push/1.0.0";
const FLOOD: usize = 32;

/// A length-prefixed identify message with only `agentVersion` (field 6) set.
fn identify_message(agent: &str) -> Vec<u8> {
    let mut body = vec![(6 << 3) | 2, agent.len() as u8];
    body.extend_from_slice(agent.as_bytes());
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(&body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identify_push_flood_from_one_peer_leaves_the_others_their_slots() {
    let mut listener = WeftListen::defaults().spawn().await.unwrap();
    let pid = listener.pid().unwrap();
    let before = rss_kib(pid).unwrap();
    let sampler = RssSampler::start(pid);

    let flooder = RawConn::connect(listener.socket_addr()).await.unwrap();
    let mut accepted = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..FLOOD {
        let mut stream = flooder.open().await.unwrap();
        let answer = propose(&mut stream, PUSH, Duration::from_secs(5)).await;
        if answer == Answer::Accepted {
            accepted.push(stream);
        }
        answers.push(answer);
    }
    // Were any accepted streams reset right after (the slot was full after all)?
    let mut reset_after_accept = 0;
    for stream in &mut accepted {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await {
            Ok(Err(_)) | Ok(Ok(0)) => reset_after_accept += 1,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    let na = answers.iter().filter(|a| **a == Answer::Na).count();
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| matches!(a, Answer::Failed(_)))
        .collect();

    // An honest peer pushes while the flooder holds its streams.
    let honest = RawConn::connect(listener.socket_addr()).await.unwrap();
    let mut push = honest.open().await.unwrap();
    let honest_answer = propose(&mut push, PUSH, Duration::from_secs(5)).await;
    let honest_push = async {
        push.write_all(&identify_message("honest-pusher")).await?;
        push.close().await?;
        Ok::<_, std::io::Error>(())
    }
    .await;
    let (_, honest_end) = drain(&mut push, Duration::from_secs(10)).await;
    let dial = honest_dial(listener.addr(), 0, Duration::from_secs(10)).await;
    let peak = sampler.stop().await;
    eprintln!(
        "identify-push flood of {FLOOD} streams from one peer: {} accepted ({reset_after_accept} \
         of them then reset or closed), {na} na, {} failed {:?}; the honest push: {honest_answer:?}, \
         write {honest_push:?}, end {honest_end:?}; honest dial ok {}; weft listen {:.1} -> peak \
         {:.1} MiB",
        accepted.len(),
        failed.len(),
        failed.first(),
        dial.success(),
        mib(before),
        mib(peak),
    );
    assert!(
        listener.is_running(),
        "weft listen exited:\n{}",
        listener.stderr()
    );
    assert_eq!(
        honest_answer,
        Answer::Accepted,
        "another peer's identify push was not accepted while one peer held {} push streams",
        accepted.len()
    );
    assert!(
        honest_push.is_ok() && honest_end.is_ok(),
        "another peer's identify push was accepted but then failed (write {honest_push:?}, \
         end {honest_end:?}): the slot it was accepted into was not its own"
    );
    assert_eq!(
        reset_after_accept,
        0,
        "{reset_after_accept} of the flood's {} accepted push streams were reset right after \
         multistream-select accepted them: over its slot a stream must get `na`",
        accepted.len()
    );
    assert!(
        na > 0 && failed.is_empty(),
        "the flood's streams beyond the slot were answered {answers:?}; expected `na`"
    );
    assert!(
        dial.success(),
        "an honest dial during the flood failed: {dial:?}"
    );
    assert!(
        peak.saturating_sub(before) < GROWTH_BUDGET_KIB,
        "weft listen's resident memory grew by {:.1} MiB",
        mib(peak.saturating_sub(before))
    );
}
