//! weft and rust-libp2p (0.57, `libp2p-dcutr`) across the NAT matrix, both roles,
//! through a weft relay in the lab's public namespace: a rust-libp2p listener
//! (`rust-libp2p-dcutr listen`, reserved at the relay) behind each NAT kind reached by
//! `weft dial` from behind each kind, and a `weft listen --relay` behind each kind
//! reached by `rust-libp2p-dcutr dial`, over TCP and QUIC, `WEFT_NAT_TRIES`
//! tries per cell.
//!
//! Both peers listen on any port of the transport on `0.0.0.0`, so that their dials
//! leave from the listening port; weft takes the lab's ranges as public (`--public
//! documentation`); rust-libp2p filters no candidate by range, and its peer waits for
//! identify's observed address before it reserves or dials, as rust-libp2p's own DCUtR
//! example does. The punch columns come from the dialer's report. Every cell must
//! connect through the relay, and the punches must meet
//! [`punch_misses`]'s criterion, with no cell excused.
#![cfg(target_os = "linux")]

use std::time::Duration;

use weft_host::Multiaddr;
use weft_interop_tests::nat::cross::{
    any_port, punch_misses, relayed_failures, run_matrix, spawn_weft_relay, weft_dialer_args,
    weft_listener_args, Role,
};
use weft_interop_tests::nat::matrix::{tries_per_cell, Transport};
use weft_interop_tests::nat::{require_lab, Lab, NatKind};
use weft_interop_tests::{prepare_rust_dcutr, weft_binary};

const WAIT: Duration = Duration::from_secs(90);
/// A dialer's own limit, within [`WAIT`]: all cells of a try run at once.
const DIAL_TIMEOUT_SECS: u64 = 60;
/// How long the rust-libp2p dialer waits for DCUtR's verdict after the relayed
/// connection: as the dialer it hears of no failed direct dial, only of a success,
/// and weft's listener makes up to three attempts.
const RUST_PUNCH_WAIT_SECS: u64 = 30;
const RELAY_PORT: u16 = 4001;

/// Which implementation listens and which dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roles {
    RustListensWeftDials,
    WeftListensRustDials,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_and_rust_libp2p_connect_across_every_nat_pair_both_roles() {
    if !require_lab() {
        return;
    }
    let weft = weft_binary().await.unwrap();
    let rust = tokio::task::spawn_blocking(prepare_rust_dcutr)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<NatKind> = NatKind::ALL.iter().chain(&NatKind::ALL).copied().collect();
    let lab = Lab::new(&kinds).unwrap();
    let (relay, relays) = spawn_weft_relay(&lab, &weft, RELAY_PORT, WAIT)
        .await
        .unwrap();

    let rust_listener = |transport: Transport, relay: &Multiaddr| {
        vec![
            "listen".into(),
            transport.name().into(),
            relay.to_string(),
            "--listen".into(),
            any_port(transport),
        ]
    };
    let rust_dialer = |transport: Transport, circuit: &Multiaddr| {
        vec![
            "dial".into(),
            transport.name().into(),
            circuit.to_string(),
            "--listen".into(),
            any_port(transport),
            "--punch-wait-secs".into(),
            RUST_PUNCH_WAIT_SECS.to_string(),
        ]
    };

    let weft_dialer = |transport: Transport, circuit: &Multiaddr| {
        weft_dialer_args(transport, circuit, DIAL_TIMEOUT_SECS)
    };

    let mut failed = Vec::new();
    let mut missed = Vec::new();
    for roles in [Roles::RustListensWeftDials, Roles::WeftListensRustDials] {
        let (listener, dialer) = match roles {
            Roles::RustListensWeftDials => (
                Role {
                    label: "rust-libp2p listener",
                    program: &rust,
                    args: &rust_listener,
                },
                Role {
                    label: "weft dialer",
                    program: &weft,
                    args: &weft_dialer,
                },
            ),
            Roles::WeftListensRustDials => (
                Role {
                    label: "weft listener",
                    program: &weft,
                    args: &weft_listener_args,
                },
                Role {
                    label: "rust-libp2p dialer",
                    program: &rust,
                    args: &rust_dialer,
                },
            ),
        };
        let matrix = run_matrix(&lab, &relays, listener, dialer, WAIT)
            .await
            .unwrap();
        eprintln!(
            "NAT matrix, {roles:?}, through a weft relay, {} tries per cell:\n{}",
            tries_per_cell(),
            matrix.to_markdown()
        );
        failed.extend(relayed_failures(&matrix, &format!("{roles:?}")));
        missed.extend(
            punch_misses(&matrix, |_| false)
                .into_iter()
                .map(|m| format!("{roles:?} {m}")),
        );
    }
    assert!(
        failed.is_empty(),
        "relayed connections failed:\n{}",
        failed.join("\n")
    );
    assert!(
        missed.is_empty(),
        "hole punching between weft and rust-libp2p missed its criterion:\n{}",
        missed.join("\n")
    );
    drop(relay);
}
