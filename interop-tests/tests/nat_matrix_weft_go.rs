//! weft and go-libp2p across the NAT matrix, both roles, through a weft relay in the
//! lab's public namespace: a go listener (`go-peer relay-listen --holepunch`, ready to
//! punch) behind each NAT kind reached by `weft dial` from behind each kind, and a
//! `weft listen --relay` behind each kind reached by `go-peer relay-dial`, over TCP and
//! QUIC, `WEFT_NAT_TRIES` tries per cell. Every cell must connect through the relay.
//! Both peers take the lab's ranges as public (weft `--public documentation`, go
//! `--public-ranges`) and punch (weft listens on any port of the transport, the go
//! peers run with `--holepunch`); the punch columns come from the dialer's report.
//! Every cell must connect through the relay, and the punches must meet
//! [`check_punches`].
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

const WAIT: Duration = Duration::from_secs(90);
/// A dialer's own limit, within [`WAIT`]: all cells of a try run at once.
const DIAL_TIMEOUT_SECS: u64 = 60;
const RELAY_PORT: u16 = 4001;
const PUBLIC_RANGES: &str = "198.51.100.0/24,203.0.113.0/24";
/// weft's `--public` class for the same ranges.
const PUBLIC: &str = "documentation";

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
    let mut missed = Vec::new();
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
                            "--public".into(),
                            PUBLIC.into(),
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
        // One try of every cell at once: a dial through the circuit may wait for a
        // hole punch (three attempts), so cells run concurrently, as in nat_matrix.rs.
        let dialers = &lab.peers()[4..];
        let jobs: Vec<(Cell, &NetNs)> = Transport::ALL
            .into_iter()
            .flat_map(|transport| {
                NatKind::ALL.into_iter().flat_map(move |listener| {
                    dialers.iter().map(move |d| {
                        let cell = Cell {
                            listener,
                            dialer: d.kind(),
                            transport,
                        };
                        (cell, d.inside())
                    })
                })
            })
            .collect();
        for _ in 0..tries_per_cell() {
            let trials = join_all(jobs.iter().map(|&(cell, ns)| {
                let circuit = circuits[&(cell.listener, cell.transport)].to_string();
                let transport = cell.transport;
                let (program, args): (&Path, Vec<String>) = match roles {
                    Roles::GoListensWeftDials => (
                        &weft,
                        vec![
                            "--json".into(),
                            "dial".into(),
                            circuit,
                            "--ping".into(),
                            "1".into(),
                            "--timeout-secs".into(),
                            DIAL_TIMEOUT_SECS.to_string(),
                            "--listen".into(),
                            transport.listen_addr(std::net::Ipv4Addr::UNSPECIFIED),
                            "--public".into(),
                            PUBLIC.into(),
                        ],
                    ),
                    Roles::WeftListensGoDials => (
                        &go,
                        vec![
                            "relay-dial".into(),
                            circuit,
                            "--transport".into(),
                            transport.name().into(),
                            "--echo-bytes".into(),
                            "1024".into(),
                            "--timeout-secs".into(),
                            DIAL_TIMEOUT_SECS.to_string(),
                            "--holepunch".into(),
                            "--public-ranges".into(),
                            PUBLIC_RANGES.into(),
                        ],
                    ),
                };
                dial_trial(ns, program, args)
            }))
            .await;
            for (&(cell, _), trial) in jobs.iter().zip(trials) {
                if let Some(report) = reports.get_mut(&cell) {
                    report.trials.push(trial);
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
        missed.extend(
            check_punches(&matrix, roles)
                .into_iter()
                .map(|m| format!("{roles:?} {m}")),
        );
        drop(listeners);
    }
    assert!(
        failed.is_empty(),
        "relayed connections failed:\n{}",
        failed.join("\n")
    );
    assert!(
        missed.is_empty(),
        "hole punching between weft and go-libp2p missed its criterion:\n{}",
        missed.join("\n")
    );
    drop(relay);
}

/// The cells where go-libp2p's dialer (A) may report no direct connection although
/// the NATs allow a punch, over TCP. The weft listener's SYN can reach the go
/// dialer's NAT first and, where that NAT lets it in (a full cone always; behind a
/// symmetric NAT the SYN comes from a fresh port and gets in as an ordinary inbound
/// connection), go takes it as an inbound connection while its own dial to the same
/// address times out, and its DCUtR reports that dial as failed: always with the
/// listener behind a symmetric NAT (go x go misses these cells the same way,
/// `nat_matrix_go.rs`), in 7 of 20 tries behind a port-restricted one facing a full
/// cone. weft x weft punches all of them (`nat_matrix.rs`).
fn go_may_report_relayed(roles: Roles, cell: Cell) -> bool {
    roles == Roles::WeftListensGoDials
        && cell.transport == Transport::Tcp
        && (cell.listener == NatKind::Symmetric || cell.dialer == NatKind::FullCone)
}

/// The hole punching criterion across implementations, per cell, as CI can hold it
/// with 3 tries: a punchable cell (except where go-libp2p's dialer may report no punch, see
/// [`go_may_report_relayed`]) ends direct in at least two thirds of its tries, an
/// unpunchable one in none. The first-attempt share is reported, not asserted: with
/// a go listener behind a symmetric NAT, weft's QUIC dial gets through only on a
/// later attempt of go's. Returns what missed, one line per cell.
fn check_punches(matrix: &MatrixReport, roles: Roles) -> Vec<String> {
    let mut wrong = Vec::new();
    for report in &matrix.cells {
        let (cell, tries, direct) = (report.cell, report.trials.len(), report.direct());
        if !cell.punchable() {
            if direct > 0 {
                wrong.push(format!(
                    "{cell}: unpunchable, yet {direct} of {tries} direct"
                ));
            }
        } else if !go_may_report_relayed(roles, cell) && direct * 3 < tries * 2 {
            wrong.push(format!(
                "{cell}: direct in {direct} of {tries} tries (at least 2/3 expected): {:?}",
                report.failures()
            ));
        }
    }
    wrong
}
