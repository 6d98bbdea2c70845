//! Runs a peer program's `dial` and parses its JSON report.

use std::process::Stdio;
use std::time::Duration;

use multiaddr::Multiaddr;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::command::PeerCommand;
use crate::error::{HarnessError, Result};
use crate::output::OutputTail;
use crate::participant::{Impl, Security};
use crate::prepare::prepare_async;
use crate::report::{DialReport, DialResult};

/// The contract's default echo size: 1 MiB.
pub const DEFAULT_ECHO_BYTES: u64 = 1_048_576;
/// Extra time the harness gives a dialer beyond its own `--timeout-secs`: its start
/// too (a js peer's took over 13 s on a loaded 2-core machine).
const GRACE: Duration = Duration::from_secs(30);
/// The most stdout we read from a dialer.
const MAX_STDOUT: u64 = 1024 * 1024;

/// Options of one `dial` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialOptions {
    /// Bytes to push through `/echo/1.0.0` (`--echo-bytes`).
    pub echo_bytes: u64,
    /// The dialer's own overall timeout (`--timeout-secs`); the harness kills it a
    /// little after that.
    pub timeout_secs: u64,
}

impl Default for DialOptions {
    fn default() -> Self {
        Self {
            echo_bytes: DEFAULT_ECHO_BYTES,
            timeout_secs: 30,
        }
    }
}

/// Prepares the peer of `imp` and runs `dial addr --security .. --echo-bytes ..`.
///
/// Succeeds only when the dialer exits 0 and prints `{"ok":true,...}`; otherwise the
/// error carries the dialer's message and stderr.
pub async fn run_dialer(
    imp: Impl,
    addr: &Multiaddr,
    security: Security,
    echo_bytes: u64,
) -> Result<DialReport> {
    let command = prepare_async(imp).await?;
    let options = DialOptions {
        echo_bytes,
        ..DialOptions::default()
    };
    run_dialer_command(&command, addr, security, options).await
}

/// Runs any contract-following program's `dial`; see [`run_dialer`].
pub async fn run_dialer_command(
    command: &PeerCommand,
    addr: &Multiaddr,
    security: Security,
    options: DialOptions,
) -> Result<DialReport> {
    let mut child = Command::new(&command.program)
        .args(command.dial_args(addr, security, options.echo_bytes, options.timeout_secs))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HarnessError::Spawn {
            program: command.program.display().to_string(),
            source,
        })?;
    let stderr = child
        .stderr
        .take()
        .map(OutputTail::drain)
        .unwrap_or_default();
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| HarnessError::Io(std::io::Error::other("child has no stdout pipe")))?;
    let fail = |message: String| HarnessError::Dial {
        participant: command.label.clone(),
        message,
        stderr: stderr.text(),
    };
    let limit = Duration::from_secs(options.timeout_secs) + GRACE;
    let run = async {
        let mut out = Vec::new();
        (&mut stdout).take(MAX_STDOUT).read_to_end(&mut out).await?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out))
    };
    let (status, out) = match tokio::time::timeout(limit, run).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(fail(format!("I/O error talking to the dialer: {e}"))),
        Err(_) => return Err(fail(format!("killed after {limit:?} without a result"))),
    };
    let out = String::from_utf8_lossy(&out);
    let Some(line) = out.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Err(fail(format!("printed nothing on stdout ({status})")));
    };
    match DialResult::parse_line(line) {
        Ok(DialResult::Ok(report)) if status.success() => Ok(report),
        Ok(DialResult::Ok(_)) => Err(fail(format!("reported ok but exited with {status}"))),
        Ok(DialResult::Failed(error)) if status.success() => Err(fail(format!(
            "reported {error:?} but exited 0, the contract wants non-zero"
        ))),
        Ok(DialResult::Failed(error)) => Err(fail(error)),
        Err(e) => Err(fail(format!("{e}; stdout line {line:?} ({status})"))),
    }
}
