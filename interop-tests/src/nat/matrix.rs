//! The NAT matrix's bookkeeping: cells (listener NAT x dialer NAT x transport), the
//! outcome of each trial, and the report per cell (relayed success rate, direct
//! success rate, first-attempt share, time to a direct connection), as a Markdown
//! table.
//!
//! A trial always says whether the relayed connection worked; its hole-punch outcome
//! is `None` until a runner tries to punch (DCUtR), and then counts in the direct
//! columns. Tries per cell: [`tries_per_cell`] (`WEFT_NAT_TRIES`, default 3; the
//! benchmark uses 20).

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::kind::NatKind;

/// The transports the matrix runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP (hole punching by simultaneous open).
    Tcp,
    /// QUIC v1 over UDP.
    Quic,
}

impl Transport {
    /// Both, TCP first.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Quic];

    /// `tcp` or `quic`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }

    /// What a multiaddr of this transport contains (`/tcp/`, `/quic-v1/`), to pick
    /// the line of a relay or a circuit printed among others.
    pub fn marker(self) -> &'static str {
        match self {
            Transport::Tcp => "/tcp/",
            Transport::Quic => "/quic-v1/",
        }
    }

    /// A listen multiaddr on `ip`, any port (`/ip4/IP/tcp/0`, `/ip4/IP/udp/0/quic-v1`).
    pub fn listen_addr(self, ip: std::net::Ipv4Addr) -> String {
        match self {
            Transport::Tcp => format!("/ip4/{ip}/tcp/0"),
            Transport::Quic => format!("/ip4/{ip}/udp/0/quic-v1"),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One cell: a listener behind one NAT, a dialer behind another, one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// The NAT in front of the peer that listens (reserves at the relay).
    pub listener: NatKind,
    /// The NAT in front of the peer that dials through the relay.
    pub dialer: NatKind,
    /// The transport.
    pub transport: Transport,
}

impl Cell {
    /// Every cell: 4 x 4 NAT pairs x 2 transports, listener-major.
    pub fn all() -> Vec<Cell> {
        let mut cells = Vec::new();
        for transport in Transport::ALL {
            for listener in NatKind::ALL {
                for dialer in NatKind::ALL {
                    cells.push(Cell {
                        listener,
                        dialer,
                        transport,
                    });
                }
            }
        }
        cells
    }

    /// Whether hole punching is expected to succeed here (see
    /// [`NatKind::punchable_with`]); otherwise the connection is expected to stay
    /// relayed and the punch to fail fast with that reason.
    pub fn punchable(&self) -> bool {
        self.listener.punchable_with(self.dialer)
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} x {} / {}",
            self.listener, self.dialer, self.transport
        )
    }
}

/// How a hole punch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Punch {
    /// A direct connection, at attempt `attempt` (1-based), `after` the relayed
    /// connection was up.
    Direct {
        /// Which attempt succeeded.
        attempt: u32,
        /// From the relayed connection to the direct one.
        after: Duration,
    },
    /// No direct connection; the reason as reported.
    Failed {
        /// Why, as the peer said it.
        reason: String,
        /// From the relayed connection to the verdict (zero when not reported).
        after: Duration,
    },
}

impl Punch {
    /// The hole punch outcome in a dialer's JSON report, when it has one. Two shapes:
    /// the go peer's `relay-dial --holepunch` report has `direct` (bool), `attempts`
    /// (the attempt that succeeded, or how many were made), `time_to_direct_ms` and
    /// `punch_error` at its top level; `weft dial` through `/p2p-circuit` nests
    /// `direct`, `attempts`, `after_ms` and `reason` in a `hole_punch` object. `None`
    /// when the report has neither (no punch was tried).
    pub fn from_report(report: &serde_json::Value) -> Option<Punch> {
        if let Some(weft) = report.get("hole_punch") {
            return Self::from_fields(weft, "after_ms", "reason");
        }
        Self::from_fields(report, "time_to_direct_ms", "punch_error")
    }

    /// One report shape: `direct` and `attempts`, with the names of its time (ms) and
    /// reason fields.
    fn from_fields(
        report: &serde_json::Value,
        ms_field: &str,
        reason_field: &str,
    ) -> Option<Punch> {
        let direct = report.get("direct")?.as_bool()?;
        let ms = report
            .get(ms_field)
            .and_then(serde_json::Value::as_f64)
            .filter(|ms| ms.is_finite())
            .unwrap_or(0.0);
        let after = Duration::from_secs_f64(ms.max(0.0) / 1e3);
        if direct {
            let attempt = report
                .get("attempts")
                .and_then(serde_json::Value::as_u64)
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(1);
            Some(Punch::Direct { attempt, after })
        } else {
            let reason = report
                .get(reason_field)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no reason given")
                .to_owned();
            Some(Punch::Failed { reason, after })
        }
    }
}

/// The outcome of one trial of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// Whether the connection through the relay worked (`Err`: why not).
    pub relayed: Result<(), String>,
    /// The hole punch, when the runner tried one.
    pub punch: Option<Punch>,
}

/// The trials of one cell and what they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellReport {
    /// The cell.
    pub cell: Cell,
    /// Its trials, in order.
    pub trials: Vec<Trial>,
}

impl CellReport {
    /// A report with no trials yet.
    pub fn new(cell: Cell) -> Self {
        Self {
            cell,
            trials: Vec::new(),
        }
    }

    /// Trials whose relayed connection worked.
    pub fn relayed_ok(&self) -> usize {
        self.trials.iter().filter(|t| t.relayed.is_ok()).count()
    }

    /// Trials that tried to punch.
    pub fn punched(&self) -> usize {
        self.trials.iter().filter(|t| t.punch.is_some()).count()
    }

    /// Trials that ended with a direct connection.
    pub fn direct(&self) -> usize {
        self.directs().count()
    }

    /// Of the direct connections, those made at the first attempt.
    pub fn first_attempt(&self) -> usize {
        self.directs().filter(|(attempt, _)| *attempt == 1).count()
    }

    /// The median time from the relayed to the direct connection.
    pub fn median_time_to_direct(&self) -> Option<Duration> {
        let mut times: Vec<Duration> = self.directs().map(|(_, after)| after).collect();
        times.sort();
        times.get(times.len() / 2).copied()
    }

    /// The longest time from the relayed connection to a punch's failure verdict:
    /// how long the slowest give-up took.
    pub fn slowest_failure(&self) -> Option<Duration> {
        self.trials
            .iter()
            .filter_map(|t| match &t.punch {
                Some(Punch::Failed { after, .. }) => Some(*after),
                _ => None,
            })
            .max()
    }

    /// The first failure reasons seen (relayed or punch), deduplicated.
    pub fn failures(&self) -> Vec<String> {
        let mut reasons: Vec<String> = Vec::new();
        for trial in &self.trials {
            let reason = match (&trial.relayed, &trial.punch) {
                (Err(e), _) => Some(format!("relayed: {e}")),
                (Ok(()), Some(Punch::Failed { reason, .. })) => Some(format!("punch: {reason}")),
                _ => None,
            };
            if let Some(reason) = reason {
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
        }
        reasons
    }

    fn directs(&self) -> impl Iterator<Item = (u32, Duration)> + '_ {
        self.trials.iter().filter_map(|t| match t.punch {
            Some(Punch::Direct { attempt, after }) => Some((attempt, after)),
            _ => None,
        })
    }
}

/// Every cell's report, printable as the README's Markdown table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatrixReport {
    /// One report per cell, in the order run.
    pub cells: Vec<CellReport>,
}

impl MatrixReport {
    /// The Markdown table: one row per cell with the expectation, the relayed and
    /// direct success rates, the first-attempt share, the median time to direct and
    /// the slowest give-up of a failed punch (`-` where there is none).
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| listener NAT | dialer NAT | transport | expected | relayed | direct | first attempt | time to direct | gave up after |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for report in &self.cells {
            let cell = report.cell;
            let tries = report.trials.len();
            let expected = if cell.punchable() {
                "punchable"
            } else {
                "relayed only"
            };
            let (direct, first, time) = if report.punched() == 0 {
                ("-".to_owned(), "-".to_owned(), "-".to_owned())
            } else {
                let direct = report.direct();
                (
                    format!("{direct}/{}", report.punched()),
                    if direct == 0 {
                        "-".to_owned()
                    } else {
                        format!("{}/{direct}", report.first_attempt())
                    },
                    report
                        .median_time_to_direct()
                        .map_or_else(|| "-".to_owned(), |t| format!("{} ms", t.as_millis())),
                )
            };
            let gave_up = report
                .slowest_failure()
                .map_or_else(|| "-".to_owned(), |t| format!("{:.1} s", t.as_secs_f64()));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {expected} | {}/{tries} | {direct} | {first} | {time} | {gave_up} |",
                cell.listener,
                cell.dialer,
                cell.transport,
                report.relayed_ok(),
            );
        }
        out
    }
}

/// Tries per cell: `WEFT_NAT_TRIES` when set to a positive number, else 3 (what CI
/// runs; the benchmark asks for 20).
pub fn tries_per_cell() -> usize {
    std::env::var("WEFT_NAT_TRIES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(punch: Option<Punch>) -> Trial {
        Trial {
            relayed: Ok(()),
            punch,
        }
    }

    #[test]
    fn a_cell_adds_up_its_trials() {
        let cell = Cell {
            listener: NatKind::FullCone,
            dialer: NatKind::Symmetric,
            transport: Transport::Quic,
        };
        let mut report = CellReport::new(cell);
        report.trials = vec![
            trial(Some(Punch::Direct {
                attempt: 1,
                after: Duration::from_millis(30),
            })),
            trial(Some(Punch::Direct {
                attempt: 2,
                after: Duration::from_millis(90),
            })),
            trial(Some(Punch::Failed {
                reason: "timed out at attempt 3".into(),
                after: Duration::from_secs(15),
            })),
            Trial {
                relayed: Err("no reservation".into()),
                punch: None,
            },
        ];
        assert_eq!(report.relayed_ok(), 3);
        assert_eq!(report.punched(), 3);
        assert_eq!(report.direct(), 2);
        assert_eq!(report.first_attempt(), 1);
        assert_eq!(
            report.median_time_to_direct(),
            Some(Duration::from_millis(90))
        );
        assert_eq!(
            report.failures(),
            vec!["punch: timed out at attempt 3", "relayed: no reservation"]
        );
        let table = MatrixReport {
            cells: vec![report],
        }
        .to_markdown();
        assert!(
            table.contains(
                "| full-cone | symmetric | quic | punchable | 3/4 | 2/3 | 1/2 | 90 ms | 15.0 s |"
            ),
            "{table}"
        );
    }

    #[test]
    fn a_dialer_report_gives_the_punch_outcome() {
        let direct = serde_json::json!({"ok": true, "direct": true, "attempts": 2, "time_to_direct_ms": 41.5});
        assert_eq!(
            Punch::from_report(&direct),
            Some(Punch::Direct {
                attempt: 2,
                after: Duration::from_secs_f64(0.0415)
            })
        );
        let failed =
            serde_json::json!({"ok": true, "direct": false, "punch_error": "both sides symmetric"});
        assert_eq!(
            Punch::from_report(&failed),
            Some(Punch::Failed {
                reason: "both sides symmetric".into(),
                after: Duration::ZERO,
            })
        );
        assert_eq!(Punch::from_report(&serde_json::json!({"ok": true})), None);
        // `weft dial`'s own shape.
        let weft_direct = serde_json::json!({"ok": true, "hole_punch": {"direct": true, "attempts": 1, "after_ms": 12.0}});
        assert_eq!(
            Punch::from_report(&weft_direct),
            Some(Punch::Direct {
                attempt: 1,
                after: Duration::from_secs_f64(0.012)
            })
        );
        let weft_failed = serde_json::json!({"ok": true, "hole_punch": {"direct": false, "attempts": 3, "after_ms": 900.0, "reason": "timed out at attempt 3"}});
        assert_eq!(
            Punch::from_report(&weft_failed),
            Some(Punch::Failed {
                reason: "timed out at attempt 3".into(),
                after: Duration::from_millis(900),
            })
        );
    }

    #[test]
    fn a_cell_without_punches_shows_dashes() {
        let cell = Cell {
            listener: NatKind::Symmetric,
            dialer: NatKind::Symmetric,
            transport: Transport::Tcp,
        };
        let mut report = CellReport::new(cell);
        report.trials = vec![trial(None), trial(None)];
        let table = MatrixReport {
            cells: vec![report],
        }
        .to_markdown();
        assert!(
            table.contains("| symmetric | symmetric | tcp | relayed only | 2/2 | - | - | - | - |"),
            "{table}"
        );
        assert_eq!(Cell::all().len(), 32);
    }
}
