//! AutoNAT v2 behind each NAT kind of the lab: three `weft listen --autonat-server`
//! in the public namespace (one per server address, `198.51.100.1-3`), and behind
//! each kind a `weft nat` that listens as a user would (TCP and QUIC on any port of
//! `0.0.0.0`, the lab's ranges taken as public with `--public documentation`) and
//! asks them, at their TCP and QUIC addresses, about its addresses.
//!
//! The expectation, per kind and transport, for the mapped addresses (those the
//! servers observed, on the router's outside address): reachable behind a full cone,
//! unreachable behind the address-restricted and port-restricted cones and behind a
//! symmetric NAT (there every server saw another port, and each is unreachable);
//! each verdict from at least 3 agreeing servers. The private (`10.x`) and loopback
//! addresses are never called public: `unknown: not a public address`.
//!
//! The servers' dial-backs come from a fresh port of their listener-less dial-back
//! host, which the kernel sends from the public namespace's gateway address
//! ([`Lab::outbound_ip`]): an address no client contacted, as a server that dials
//! back from a second address of its own does. An address-restricted cone lets in
//! any port of an address it sent to, so from the contacted server address it would
//! let the dial-back in; from the gateway address it does not.
//!
//! `WEFT_NAT_TRIES` tries per kind (default 3), [`PARALLEL`] at once, each try with
//! its own three servers (ports 4001, 4002, ... of the three addresses), so that the
//! servers' limits (8 requests in progress, 2 per peer) hold with four clients each.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::future::join_all;
use weft_interop_tests::nat::matrix::{tries_per_cell, Transport};
use weft_interop_tests::nat::{require_lab, Lab, LabProcess, NatKind, NetNs, PUBLIC_HOSTS};
use weft_interop_tests::weft_binary;

/// Tries run at once (each with its own servers).
const PARALLEL: usize = 3;
/// The first server port; try `j` of a batch uses `FIRST_PORT + j`.
const FIRST_PORT: u16 = 4001;
/// What `weft nat` is given (`--timeout-secs`): time for every probe, an
/// unreachable TCP address costing a server its 15 s dial-back timeout.
const NAT_TIMEOUT_SECS: u64 = 100;
/// How long one `weft nat` may take, beyond its own timeout.
const WAIT: Duration = Duration::from_secs(NAT_TIMEOUT_SECS + 20);
/// The client's log: its AutoNAT probes at debug (each probe's server, address and
/// outcome, and why a probe taught nothing), so that a wrong verdict shows its cause.
const CLIENT_LOG: &str = "warn,weft_host::autonat=debug";
/// Log lines of a failing try that are kept in the failure message.
const LOG_LINES: usize = 40;
/// How long a server may take to print its addresses.
const START: Duration = Duration::from_secs(60);
/// The address classes taken as public: the lab's.
const PUBLIC: &str = "documentation";

/// One address of a `weft nat` report.
#[derive(Debug, Clone)]
struct Addr {
    ip: Ipv4Addr,
    transport: Transport,
    reachability: String,
    verdict: String,
    successes: u64,
    failures: u64,
    after_ms: Option<f64>,
}

fn parse_addr(entry: &serde_json::Value) -> Option<Addr> {
    let text = entry["addr"].as_str()?;
    let ma: weft_host::Multiaddr = text.parse().ok()?;
    let ip = ma.iter().find_map(|p| match p {
        weft_host::Protocol::Ip4(ip) => Some(ip),
        _ => None,
    })?;
    let transport = if text.contains("/udp/") {
        Transport::Quic
    } else {
        Transport::Tcp
    };
    Some(Addr {
        ip,
        transport,
        reachability: entry["reachability"].as_str()?.to_owned(),
        verdict: entry["verdict"].as_str()?.to_owned(),
        successes: entry["successes"].as_u64()?,
        failures: entry["failures"].as_u64()?,
        after_ms: entry["after_ms"].as_f64(),
    })
}

/// What one `weft nat` reported: its addresses, or why not, and its log (stderr).
struct Asked {
    addrs: Result<Vec<Addr>, String>,
    log: String,
}

/// The last [`LOG_LINES`] lines of `log` that tell about probes, indented.
fn probe_log(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("autonat")).collect();
    let skip = lines.len().saturating_sub(LOG_LINES);
    lines[skip..].iter().map(|l| format!("\n    {l}")).collect()
}

/// One `weft nat` behind a NAT, asking `servers`.
async fn ask(weft: &std::path::Path, ns: &NetNs, servers: &[weft_host::Multiaddr]) -> Asked {
    match ns
        .output_with_env(
            weft,
            args(servers),
            &[("WEFT_LOG", CLIENT_LOG), ("NO_COLOR", "1")],
            WAIT,
        )
        .await
    {
        Ok(output) => Asked {
            addrs: report(&output),
            log: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Err(e) => Asked {
            addrs: Err(e.to_string()),
            log: String::new(),
        },
    }
}

/// The arguments of `weft nat` asking `servers`.
fn args(servers: &[weft_host::Multiaddr]) -> Vec<String> {
    let mut args: Vec<String> = ["--json", "nat", "--public", PUBLIC, "--timeout-secs"]
        .map(str::to_owned)
        .into();
    args.push(NAT_TIMEOUT_SECS.to_string());
    for transport in Transport::ALL {
        args.push("--listen".into());
        args.push(transport.listen_addr(Ipv4Addr::UNSPECIFIED));
    }
    for server in servers {
        args.push("--server".into());
        args.push(server.to_string());
    }
    args
}

/// The addresses in the JSON report of a `weft nat` that ran to its end.
fn report(output: &std::process::Output) -> Result<Vec<Addr>, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "no JSON report ({e}): {stdout}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if report["ok"] != true || !output.status.success() {
        return Err(format!("weft nat failed: {report}"));
    }
    if report["servers"] != 3 {
        return Err(format!("not every server answered: {report}"));
    }
    report["addrs"]
        .as_array()
        .ok_or_else(|| format!("no addresses: {report}"))?
        .iter()
        .map(|a| parse_addr(a).ok_or_else(|| format!("unreadable address {a}")))
        .collect()
}

/// What one try of one kind and transport gave for the mapped addresses.
#[derive(Debug, Clone)]
struct Outcome {
    /// The verdicts on the mapped addresses (one per address).
    verdicts: Vec<String>,
    /// The fewest agreeing servers behind a verdict.
    agreeing: u64,
    /// When the last mapped address got its verdict, in ms from the start.
    after_ms: Option<f64>,
}

/// Checks one try's report for `kind` behind `wan`, and returns the outcome per
/// transport, or what was wrong.
fn check(
    kind: NatKind,
    wan: Ipv4Addr,
    addrs: &[Addr],
) -> Result<BTreeMap<Transport, Outcome>, String> {
    let mut wrong = Vec::new();
    let mut private = 0;
    for a in addrs.iter().filter(|a| a.ip != wan) {
        if a.ip.is_private() || a.ip.is_loopback() {
            private += 1;
        }
        if a.reachability == "reachable" || !a.verdict.contains("not a public address") {
            wrong.push(format!(
                "{} (not the mapped address) got {}",
                a.ip, a.verdict
            ));
        }
    }
    if private == 0 {
        wrong.push("no private or loopback address in the report".to_owned());
    }
    let expected = if kind == NatKind::FullCone {
        "reachable"
    } else {
        "unreachable"
    };
    let mut out = BTreeMap::new();
    for transport in Transport::ALL {
        let mapped: Vec<&Addr> = addrs
            .iter()
            .filter(|a| a.ip == wan && a.transport == transport)
            .collect();
        if mapped.is_empty() {
            wrong.push(format!("{transport}: no mapped address"));
            continue;
        }
        // Endpoint-independent mappings show one port to every server.
        if kind != NatKind::Symmetric && mapped.len() != 1 {
            wrong.push(format!(
                "{transport}: {} mapped addresses behind a {kind} NAT",
                mapped.len()
            ));
        }
        for a in &mapped {
            if a.reachability != expected || !a.verdict.starts_with(expected) {
                wrong.push(format!(
                    "{transport}: a mapped address got `{}`, {expected} expected",
                    a.verdict
                ));
            }
        }
        let agreeing = mapped
            .iter()
            .map(|a| {
                if kind == NatKind::FullCone {
                    a.successes
                } else {
                    a.failures
                }
            })
            .min()
            .unwrap_or(0);
        if agreeing < 3 {
            wrong.push(format!(
                "{transport}: a verdict from {agreeing} agreeing servers"
            ));
        }
        let after_ms = mapped
            .iter()
            .map(|a| a.after_ms)
            .try_fold(0.0f64, |max, t| t.map(|t| max.max(t)));
        out.insert(
            transport,
            Outcome {
                verdicts: mapped.iter().map(|a| a.reachability.clone()).collect(),
                agreeing,
                after_ms,
            },
        );
    }
    if wrong.is_empty() {
        Ok(out)
    } else {
        Err(wrong.join("; "))
    }
}

/// The Markdown table: per kind and transport, the verdict on the mapped
/// address(es), the fewest agreeing servers, the median time to the verdict.
fn table(results: &BTreeMap<(NatKind, Transport), Vec<Outcome>>) -> String {
    let mut out = String::from(
        "| NAT | transport | expected | verdict on the mapped address | tries | servers agreeing (fewest) | time to verdict (median) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for ((kind, transport), outcomes) in results {
        let expected = if *kind == NatKind::FullCone {
            "reachable"
        } else {
            "unreachable"
        };
        let mut verdicts: Vec<String> = outcomes
            .iter()
            .map(|o| match o.verdicts.as_slice() {
                [one] => one.clone(),
                many => format!("{} addresses: {}", many.len(), many.join(", ")),
            })
            .collect();
        verdicts.dedup();
        let agreeing = outcomes.iter().map(|o| o.agreeing).min().unwrap_or(0);
        let mut times: Vec<f64> = outcomes.iter().filter_map(|o| o.after_ms).collect();
        times.sort_by(f64::total_cmp);
        let median = times
            .get(times.len() / 2)
            .map_or_else(|| "-".to_owned(), |t| format!("{:.1} s", t / 1e3));
        out.push_str(&format!(
            "| {kind} | {transport} | {expected} | {} | {} | {agreeing} | {median} |\n",
            verdicts.join(" / "),
            outcomes.len(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autonat_gives_each_nat_kind_its_verdict() {
    if !require_lab() {
        return;
    }
    let weft = weft_binary().await.unwrap();
    let tries = tries_per_cell();
    let parallel = PARALLEL.min(tries);
    // One peer per kind for each try that runs at once.
    let kinds: Vec<NatKind> = (0..parallel).flat_map(|_| NatKind::ALL).collect();
    let lab = Lab::new(&kinds).unwrap();

    // Server set j: one server on each server address, at port FIRST_PORT + j.
    let mut processes = Vec::new();
    let mut sets: Vec<Vec<weft_host::Multiaddr>> = Vec::new();
    for j in 0..parallel {
        let port = FIRST_PORT + u16::try_from(j).unwrap();
        let mut set = Vec::new();
        for n in 0..PUBLIC_HOSTS {
            let ip = lab.public_ip(n);
            let mut server = LabProcess::spawn(
                lab.public(),
                &format!("weft AutoNAT server {ip}:{port}"),
                &weft,
                [
                    "listen".to_owned(),
                    "--listen".to_owned(),
                    format!("/ip4/{ip}/tcp/{port}"),
                    "--listen".to_owned(),
                    format!("/ip4/{ip}/udp/{port}/quic-v1"),
                    "--autonat-server".to_owned(),
                    "--public".to_owned(),
                    PUBLIC.to_owned(),
                ],
            )
            .unwrap();
            for transport in Transport::ALL {
                let line = server
                    .line_matching(|l| l.contains(transport.marker()), START)
                    .await
                    .unwrap();
                set.push(line.parse::<weft_host::Multiaddr>().unwrap());
            }
            processes.push(server);
        }
        sets.push(set);
    }

    let mut results: BTreeMap<(NatKind, Transport), Vec<Outcome>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut done = 0;
    while done < tries {
        let batch = parallel.min(tries - done);
        let runs = join_all((0..batch).flat_map(|j| {
            let set = &sets[j];
            let weft = &weft;
            lab.peers()[j * 4..(j + 1) * 4]
                .iter()
                .map(move |peer| async move {
                    let started = std::time::Instant::now();
                    let asked = ask(weft, peer.inside(), set).await;
                    (peer, asked, started.elapsed())
                })
        }))
        .await;
        for (peer, asked, took) in runs {
            let checked = asked
                .addrs
                .and_then(|addrs| check(peer.kind(), peer.wan_ip(), &addrs))
                .map_err(|e| format!("{e}; its probes:{}", probe_log(&asked.log)));
            match checked {
                Ok(outcomes) => {
                    for (transport, outcome) in outcomes {
                        results
                            .entry((peer.kind(), transport))
                            .or_default()
                            .push(outcome);
                    }
                }
                Err(e) => failures.push(format!("behind {} ({took:?}): {e}", peer.kind())),
            }
        }
        done += batch;
    }
    eprintln!(
        "AutoNAT v2 verdicts per NAT kind, {tries} tries:\n{}",
        table(&results)
    );
    assert!(
        failures.is_empty(),
        "wrong verdicts:\n{}",
        failures.join("\n")
    );
    drop(processes);
}
