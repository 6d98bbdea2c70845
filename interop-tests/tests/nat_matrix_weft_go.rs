//! weft and go-libp2p across the NAT matrix, both roles, through a weft relay in the
//! lab's public namespace: a go listener (`go-peer relay-listen --holepunch`, ready to
//! punch) behind each NAT kind reached by `weft dial` from behind each kind, and a
//! `weft listen --relay` behind each kind reached by `go-peer relay-dial`, over TCP and
//! QUIC, `WEFT_NAT_TRIES` tries per cell. Every cell must connect through the relay.
//! The punch columns fill in from the dialer's report once weft speaks DCUtR (the go
//! dialer then runs with `--holepunch`, as `nat_matrix_go.rs` does).
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::future::join_all;
use weft_host::Multiaddr;
use weft_interop_tests::nat::matrix::{
    tries_per_cell, Cell, CellReport, MatrixReport, Punch, Transport, Trial,
};
use weft_interop_tests::nat::{require_lab, Lab, LabProcess, NatKind, NetNs};
use weft_interop_tests::{prepare_async, require_impls, weft_binary, Impl};

const WAIT: Duration = Duration::from_secs(30);
const RELAY_PORT: u16 = 4001;
const PUBLIC_RANGES: &str = "198.51.100.0/24,203.0.113.0/24";

/// Runs a dialer to completion inside `ns` and makes its JSON report a trial.
async fn dial_trial(ns: &NetNs, program: &Path, args: Vec<String>) -> Trial {
    let output = match ns.output(program, &args, WAIT).await {
        Ok(output) => output,
        Err(e) => {
            return Trial {
                relayed: Err(e.to_string()),
                punch: None,
            }
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match serde_json::from_str::<serde_json::Value>(stdout.trim()) {
        Ok(report) if report["ok"] == true && output.status.success() => Trial {
            relayed: Ok(()),
            punch: Punch::from_report(&report),
        },
        Ok(report) => Trial {
            relayed: Err(report["error"].as_str().unwrap_or("not ok").to_owned()),
            punch: None,
        },
        Err(e) => Trial {
            relayed: Err(format!(
                "no JSON report ({e}): {stdout}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )),
            punch: None,
        },
    }
}

/// Which implementation listens and which dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roles {
    GoListensWeftDials,
    WeftListensGoDials,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_and_go_libp2p_connect_across_every_nat_pair_both_roles() {
    if !require_lab() || !require_impls(&[Impl::Go]) {
        return;
    }
    let weft = weft_binary().await.unwrap();
    let go = prepare_async(Impl::Go).await.unwrap().program;
    let kinds: Vec<NatKind> = NatKind::ALL.iter().chain(&NatKind::ALL).copied().collect();
    let lab = Lab::new(&kinds).unwrap();
    let relay_ip = lab.public_ip(0);
    let mut relay = LabProcess::spawn(
        lab.public(),
        "weft relay",
        &weft,
        [
            "relay".to_owned(),
            "--listen".to_owned(),
            format!("/ip4/{relay_ip}/tcp/{RELAY_PORT}"),
            "--listen".to_owned(),
            format!("/ip4/{relay_ip}/udp/{RELAY_PORT}/quic-v1"),
        ],
    )
    .unwrap();
    let mut relay_addrs = BTreeMap::new();
    for transport in Transport::ALL {
        let line = relay
            .line_matching(|l| l.contains(transport.marker()), WAIT)
            .await
            .unwrap();
        relay_addrs.insert(transport, line.parse::<Multiaddr>().unwrap());
    }

    let mut failed = Vec::new();
    for roles in [Roles::GoListensWeftDials, Roles::WeftListensGoDials] {
        let mut listeners = Vec::new();
        let mut circuits = BTreeMap::new();
        for transport in Transport::ALL {
            for peer in &lab.peers()[..4] {
                let relay_addr = relay_addrs[&transport].to_string();
                let (program, args): (&Path, Vec<String>) = match roles {
                    Roles::GoListensWeftDials => (
                        &go,
                        vec![
                            "relay-listen".into(),
                            relay_addr,
                            "--transport".into(),
                            transport.name().into(),
                            "--holepunch".into(),
                            "--public-ranges".into(),
                            PUBLIC_RANGES.into(),
                        ],
                    ),
                    Roles::WeftListensGoDials => (
                        &weft,
                        vec![
                            "listen".into(),
                            "--listen".into(),
                            transport.listen_addr(std::net::Ipv4Addr::UNSPECIFIED),
                            "--relay".into(),
                            relay_addr,
                        ],
                    ),
                };
                let mut listener = LabProcess::spawn(
                    peer.inside(),
                    &format!("{roles:?} listener behind {}", peer.kind()),
                    program,
                    args,
                )
                .unwrap();
                let line = listener
                    .line_matching(
                        |l| l.contains("/p2p-circuit/") && l.contains(transport.marker()),
                        WAIT,
                    )
                    .await
                    .unwrap();
                circuits.insert((peer.kind(), transport), line.parse::<Multiaddr>().unwrap());
                listeners.push(listener);
            }
        }
        let mut reports: BTreeMap<Cell, CellReport> = Cell::all()
            .into_iter()
            .map(|cell| (cell, CellReport::new(cell)))
            .collect();
        for _ in 0..tries_per_cell() {
            for transport in Transport::ALL {
                for listener_kind in NatKind::ALL {
                    let circuit = circuits[&(listener_kind, transport)].to_string();
                    let dialers = &lab.peers()[4..];
                    let trials = join_all(dialers.iter().map(|d| {
                        let (program, args): (&Path, Vec<String>) = match roles {
                            Roles::GoListensWeftDials => (
                                &weft,
                                vec![
                                    "--json".into(),
                                    "dial".into(),
                                    circuit.clone(),
                                    "--ping".into(),
                                    "1".into(),
                                    "--timeout-secs".into(),
                                    "20".into(),
                                ],
                            ),
                            Roles::WeftListensGoDials => (
                                &go,
                                vec![
                                    "relay-dial".into(),
                                    circuit.clone(),
                                    "--transport".into(),
                                    transport.name().into(),
                                    "--echo-bytes".into(),
                                    "1024".into(),
                                    "--timeout-secs".into(),
                                    "20".into(),
                                ],
                            ),
                        };
                        dial_trial(d.inside(), program, args)
                    }))
                    .await;
                    for (dialer, trial) in dialers.iter().zip(trials) {
                        let cell = Cell {
                            listener: listener_kind,
                            dialer: dialer.kind(),
                            transport,
                        };
                        if let Some(report) = reports.get_mut(&cell) {
                            report.trials.push(trial);
                        }
                    }
                }
            }
        }
        let matrix = MatrixReport {
            cells: reports.into_values().collect(),
        };
        eprintln!(
            "NAT matrix, {roles:?}, through a weft relay, {} tries per cell:\n{}",
            tries_per_cell(),
            matrix.to_markdown()
        );
        failed.extend(
            matrix
                .cells
                .iter()
                .filter(|r| r.relayed_ok() < r.trials.len())
                .map(|r| format!("{roles:?} {}: {:?}", r.cell, r.failures())),
        );
        drop(listeners);
    }
    assert!(
        failed.is_empty(),
        "relayed connections failed:\n{}",
        failed.join("\n")
    );
    drop(relay);
}
