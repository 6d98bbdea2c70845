//! The NAT matrix across implementations: a listener of one implementation behind
//! each NAT kind, reserved at a relay in the public namespace, dialed through the relay
//! by a dialer of another implementation behind each kind, over TCP and QUIC. The
//! dialers report in JSON (see [`Punch::from_report`]); each try runs every cell at
//! once, [`tries_per_cell`] tries in all.
//!
//! The lab must hold eight peers, two of each kind in [`NatKind::ALL`] order
//! (listeners behind the first four, dialers behind the last four), as
//! [`Lab::new`] makes them from `NatKind::ALL` twice.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use futures::future::join_all;
use multiaddr::Multiaddr;

use super::matrix::{tries_per_cell, Cell, CellReport, MatrixReport, Punch, Transport, Trial};
use super::{Lab, LabError, LabProcess, NatKind, NetNs};

/// One side of a cross-implementation matrix: the program and its arguments for a
/// transport and an address (the relay's, for a listener; the listener's circuit
/// address, for a dialer).
pub struct Role<'a> {
    /// What the side is called in messages (`"go listener"`).
    pub label: &'a str,
    /// The program to run inside the namespace.
    pub program: &'a Path,
    /// Its arguments for a transport and an address.
    pub args: &'a dyn Fn(Transport, &Multiaddr) -> Vec<String>,
}

/// Starts `weft relay` in the lab's public namespace on `port` (TCP and QUIC) and
/// returns it with its address per transport, as it printed them.
pub async fn spawn_weft_relay(
    lab: &Lab,
    weft: &Path,
    port: u16,
    wait: Duration,
) -> Result<(LabProcess, BTreeMap<Transport, Multiaddr>), LabError> {
    let ip = lab.public_ip(0);
    let mut relay = LabProcess::spawn(
        lab.public(),
        "weft relay",
        weft,
        [
            "relay".to_owned(),
            "--listen".to_owned(),
            format!("/ip4/{ip}/tcp/{port}"),
            "--listen".to_owned(),
            format!("/ip4/{ip}/udp/{port}/quic-v1"),
        ],
    )?;
    let mut addrs = BTreeMap::new();
    for transport in Transport::ALL {
        let line = relay
            .line_matching(|l| l.contains(transport.marker()), wait)
            .await?;
        addrs.insert(transport, parse_addr(&line, "weft relay")?);
    }
    Ok((relay, addrs))
}

fn parse_addr(line: &str, who: &str) -> Result<Multiaddr, LabError> {
    line.trim().parse().map_err(|e| LabError::Command {
        command: who.to_owned(),
        output: format!("printed {line:?}, not a multiaddr: {e}"),
    })
}

/// The most of a failed dialer's stderr that its trial keeps (its end).
const STDERR_TAIL: usize = 4000;

/// The last `max` bytes of `text` (whole characters).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The report fields every dialer's JSON report must have `true` for a working
/// relayed connection.
pub const REPORT_OK: &[&str] = &["ok"];

/// Runs a dialer to completion inside `ns` and makes its JSON report a trial: the
/// relayed connection worked when the report has `true` in each of `required` (at
/// least [`REPORT_OK`]) and the program exited 0; the punch is what
/// [`Punch::from_report`] finds in it (kept either way). A failed trial keeps the end
/// of the dialer's stderr (set `WEFT_LOG` for weft's logs there).
pub async fn json_dial_trial(
    ns: &NetNs,
    program: &Path,
    args: &[String],
    wait: Duration,
    required: &[&str],
) -> Trial {
    let output = match ns.output(program, args, wait).await {
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
        Ok(report) if required.iter().all(|f| report[*f] == true) && output.status.success() => {
            Trial {
                relayed: Ok(()),
                punch: Punch::from_report(&report),
            }
        }
        Ok(report) => Trial {
            relayed: Err(format!(
                "{}; stderr ends: {}",
                report["error"].as_str().map_or_else(
                    || format!(
                        "the report lacks true {required:?}, or exit {}",
                        output.status
                    ),
                    str::to_owned
                ),
                tail(&String::from_utf8_lossy(&output.stderr), STDERR_TAIL)
            )),
            punch: Punch::from_report(&report),
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

/// Runs the matrix: a `listener` behind each of the lab's first four peers per
/// transport, reserved at `relays` (its circuit address is the first line it prints
/// with `/p2p-circuit/` and the transport's marker), then [`tries_per_cell`] tries of
/// every cell, a `dialer` behind each of the last four peers dialing each listener's
/// circuit address. `wait` bounds each listener's start and each dial.
pub async fn run_matrix(
    lab: &Lab,
    relays: &BTreeMap<Transport, Multiaddr>,
    listener: Role<'_>,
    dialer: Role<'_>,
    wait: Duration,
) -> Result<MatrixReport, LabError> {
    let peers = lab.peers();
    let kinds: Vec<NatKind> = peers.iter().map(|p| p.kind()).collect();
    let wanted: Vec<NatKind> = NatKind::ALL.iter().chain(&NatKind::ALL).copied().collect();
    if kinds != wanted {
        return Err(LabError::Plan(format!(
            "peers behind {kinds:?}, wanted {wanted:?} (listeners, then dialers)"
        )));
    }
    let mut listeners = Vec::new();
    let mut circuits = BTreeMap::new();
    for transport in Transport::ALL {
        let relay = relays
            .get(&transport)
            .ok_or_else(|| LabError::Plan(format!("no {transport} relay address")))?;
        for peer in &peers[..NatKind::ALL.len()] {
            let label = format!("{} behind {} ({transport})", listener.label, peer.kind());
            let mut process = LabProcess::spawn(
                peer.inside(),
                &label,
                listener.program,
                (listener.args)(transport, relay),
            )?;
            let line = process
                .line_matching(
                    |l| l.contains("/p2p-circuit/") && l.contains(transport.marker()),
                    wait,
                )
                .await?;
            circuits.insert((peer.kind(), transport), parse_addr(&line, &label)?);
            listeners.push(process);
        }
    }
    let mut reports: BTreeMap<Cell, CellReport> = Cell::all()
        .into_iter()
        .map(|cell| (cell, CellReport::new(cell)))
        .collect();
    // One try of every cell at once: a dial through the circuit may wait for a hole
    // punch (three attempts), so cells run concurrently.
    let mut jobs: Vec<(Cell, &NetNs, Vec<String>)> = Vec::new();
    for transport in Transport::ALL {
        for listener_kind in NatKind::ALL {
            for d in &peers[NatKind::ALL.len()..] {
                let cell = Cell {
                    listener: listener_kind,
                    dialer: d.kind(),
                    transport,
                };
                let circuit = &circuits[&(listener_kind, transport)];
                jobs.push((cell, d.inside(), (dialer.args)(transport, circuit)));
            }
        }
    }
    for _ in 0..tries_per_cell() {
        let trials = join_all(
            jobs.iter()
                .map(|(_, ns, args)| json_dial_trial(ns, dialer.program, args, wait, REPORT_OK)),
        )
        .await;
        for ((cell, _, _), trial) in jobs.iter().zip(trials) {
            if let Some(report) = reports.get_mut(cell) {
                report.trials.push(trial);
            }
        }
    }
    drop(listeners);
    Ok(MatrixReport {
        cells: reports.into_values().collect(),
    })
}

/// The listen address a punching peer asks for: any port of `transport` on every
/// interface (`0.0.0.0`), so its dials leave from the listening port.
pub fn any_port(transport: Transport) -> String {
    transport.listen_addr(Ipv4Addr::UNSPECIFIED)
}

/// The hole punching criterion across implementations, per cell, as CI can hold it
/// with 3 tries: a punchable cell ends direct in at least two thirds of its tries
/// (unless `excused` says the peer under test may report no punch there), an
/// unpunchable one in none. The first-attempt share is reported, not asserted.
/// Returns what missed, one line per cell.
pub fn punch_misses(matrix: &MatrixReport, excused: impl Fn(Cell) -> bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for report in &matrix.cells {
        let (cell, tries, direct) = (report.cell, report.trials.len(), report.direct());
        if !cell.punchable() {
            if direct > 0 {
                wrong.push(format!(
                    "{cell}: unpunchable, yet {direct} of {tries} direct"
                ));
            }
        } else if !excused(cell) && direct * 3 < tries * 2 {
            wrong.push(format!(
                "{cell}: direct in {direct} of {tries} tries (at least 2/3 expected): {:?}",
                report.failures()
            ));
        }
    }
    wrong
}

/// weft's `--public` class for the lab's ranges.
pub const WEFT_PUBLIC: &str = "documentation";

/// `weft listen` behind a NAT, reserved at `relay`: on any port of `transport`, the
/// lab's ranges public.
pub fn weft_listener_args(transport: Transport, relay: &Multiaddr) -> Vec<String> {
    vec![
        "listen".into(),
        "--listen".into(),
        any_port(transport),
        "--relay".into(),
        relay.to_string(),
        "--public".into(),
        WEFT_PUBLIC.into(),
    ]
}

/// `weft --json dial` of `circuit` with one ping, within `timeout_secs`: on any port
/// of `transport`, the lab's ranges public.
pub fn weft_dialer_args(
    transport: Transport,
    circuit: &Multiaddr,
    timeout_secs: u64,
) -> Vec<String> {
    vec![
        "--json".into(),
        "dial".into(),
        circuit.to_string(),
        "--ping".into(),
        "1".into(),
        "--timeout-secs".into(),
        timeout_secs.to_string(),
        "--listen".into(),
        any_port(transport),
        "--public".into(),
        WEFT_PUBLIC.into(),
    ]
}

/// The cells of `matrix` where some relayed connection failed, one line each,
/// prefixed with `label`.
pub fn relayed_failures(matrix: &MatrixReport, label: &str) -> Vec<String> {
    matrix
        .cells
        .iter()
        .filter(|r| r.relayed_ok() < r.trials.len())
        .map(|r| format!("{label} {}: {:?}", r.cell, r.failures()))
        .collect()
}
