//! The NAT matrix with go-libp2p on both sides, the lab's baseline: a go relay in the
//! public namespace, `go-peer relay-listen --holepunch` behind a NAT of each kind,
//! `go-peer relay-dial --holepunch` from behind a NAT of each kind, over TCP and QUIC,
//! `WEFT_NAT_TRIES` tries per cell. Both peers treat the lab's ranges as public
//! (`--public-ranges`), as go-libp2p punches only from a public address.
//!
//! Every cell must connect through the relay; no unpunchable cell may end direct
//! (the NATs would have to be wrong); every cell go-libp2p can punch must end direct
//! at least once. The table goes to stderr.
//!
//! go-libp2p cannot punch a symmetric NAT on the listener's side (the DCUtR
//! initiator, B in the spec), though the pair is punchable: over QUIC only the
//! dialer dials (to the listener's observed address, the symmetric NAT's mapping
//! towards the relay, closed to everyone else), the listener only sends punch
//! packets; over TCP the listener's SYN does get into the dialer's cone, but as an
//! ordinary inbound connection while the listener's side took the responder role of
//! a simultaneous open, so both sides wait for the other's security handshake until
//! the 5 s dial timeout resets it. The lab shows that in the go x go table.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use weft_host::Multiaddr;
use weft_interop_tests::nat::cross::json_dial_trial;
use weft_interop_tests::nat::matrix::{
    tries_per_cell, Cell, CellReport, MatrixReport, Transport, Trial,
};
use weft_interop_tests::nat::{require_lab, Lab, LabProcess, NatKind, NetNs};
use weft_interop_tests::{prepare_async, require_impls, Impl};

const WAIT: Duration = Duration::from_secs(30);
const RELAY_PORT: u16 = 4001;
const PUBLIC_RANGES: &str = "198.51.100.0/24,203.0.113.0/24";

/// One `go-peer relay-dial --holepunch` through `circuit` from inside `ns`.
async fn go_dial_trial(
    go: &std::path::Path,
    ns: &NetNs,
    transport: Transport,
    circuit: &Multiaddr,
) -> Trial {
    let args = [
        "relay-dial".to_owned(),
        circuit.to_string(),
        "--transport".to_owned(),
        transport.name().to_owned(),
        "--holepunch".to_owned(),
        "--public-ranges".to_owned(),
        PUBLIC_RANGES.to_owned(),
        "--echo-bytes".to_owned(),
        "1024".to_owned(),
        "--timeout-secs".to_owned(),
        "20".to_owned(),
    ];
    // go's report also says whether the connection it made was a circuit.
    json_dial_trial(ns, go, &args, WAIT, &["ok", "relayed"]).await
}

/// The punchable cells go-libp2p punches: all but a symmetric NAT in front of the
/// listener (see the module documentation).
fn go_can_punch(cell: Cell) -> bool {
    cell.punchable() && cell.listener != NatKind::Symmetric
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_libp2p_punches_through_every_punchable_pair() {
    if !require_lab() || !require_impls(&[Impl::Go]) {
        return;
    }
    let go = prepare_async(Impl::Go).await.unwrap().program;
    let kinds: Vec<NatKind> = NatKind::ALL.iter().chain(&NatKind::ALL).copied().collect();
    let lab = Lab::new(&kinds).unwrap();
    let relay_ip = lab.public_ip(0).to_string();
    let mut relays = Vec::new();
    let mut relay_addrs = BTreeMap::new();
    for transport in Transport::ALL {
        let mut relay = LabProcess::spawn(
            lab.public(),
            "go relay",
            &go,
            [
                "relay-server",
                "--ip",
                &relay_ip,
                "--port",
                &RELAY_PORT.to_string(),
                "--transport",
                transport.name(),
            ],
        )
        .unwrap();
        let line = relay
            .line_matching(|l| l.contains("/p2p/"), WAIT)
            .await
            .unwrap();
        relay_addrs.insert(transport, line.parse::<Multiaddr>().unwrap());
        relays.push(relay);
    }
    let mut listeners = Vec::new();
    let mut circuits = BTreeMap::new();
    for transport in Transport::ALL {
        for peer in &lab.peers()[..4] {
            let mut listener = LabProcess::spawn(
                peer.inside(),
                &format!("go relay-listen behind {}", peer.kind()),
                &go,
                [
                    "relay-listen".to_owned(),
                    relay_addrs[&transport].to_string(),
                    "--transport".to_owned(),
                    transport.name().to_owned(),
                    "--holepunch".to_owned(),
                    "--public-ranges".to_owned(),
                    PUBLIC_RANGES.to_owned(),
                ],
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
                let circuit = &circuits[&(listener_kind, transport)];
                let dialers = &lab.peers()[4..];
                let trials = join_all(
                    dialers
                        .iter()
                        .map(|d| go_dial_trial(&go, d.inside(), transport, circuit)),
                )
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
        "NAT matrix, go-libp2p <-> go-libp2p through a go relay, {} tries per cell:\n{}",
        tries_per_cell(),
        matrix.to_markdown()
    );
    let mut wrong = Vec::new();
    for report in &matrix.cells {
        let cell = report.cell;
        if report.relayed_ok() < report.trials.len() {
            wrong.push(format!("{cell}: relayed failures {:?}", report.failures()));
        } else if go_can_punch(cell) && report.direct() == 0 {
            wrong.push(format!("{cell}: never direct: {:?}", report.failures()));
        } else if !cell.punchable() && report.direct() > 0 {
            wrong.push(format!("{cell}: direct, though unpunchable"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(listeners);
    drop(relays);
}
