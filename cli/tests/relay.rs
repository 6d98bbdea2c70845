//! `weft relay` serves circuit relay v2; `weft listen --relay` reserves a slot at it
//! and prints its circuit address; `weft dial` reaches the listener through it.

mod support;

use std::process::Stdio;
use support::{dial_ok, listen, spawn_listener, weft};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_behind_a_weft_relay_is_dialed_through_it() {
    let mut command = Command::new(weft());
    command
        .arg("relay")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let (mut relay, relay_addr) = spawn_listener(command).await;
    let (mut listener, circuit_addr) = listen(&["--relay", &relay_addr]).await;
    assert!(
        circuit_addr.starts_with(&format!("{relay_addr}/p2p-circuit/p2p/")),
        "{circuit_addr}"
    );
    dial_ok(
        &circuit_addr,
        &["--ping", "2", "--echo", "4096"],
        "through the relay",
        "",
    )
    .await;
    assert!(
        listener.try_wait().unwrap().is_none(),
        "the listener runs on"
    );
    listener.kill().await.unwrap();
    relay.kill().await.unwrap();
}
