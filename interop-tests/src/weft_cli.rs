//! Runs the `weft` command-line binary of this build: `weft listen` as a
//! [`ListeningPeer`] (optionally under a lowered open-files limit), and any other
//! subcommand to completion with its exit status, output and duration.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::{HarnessError, Result};
use crate::listener::ListeningPeer;
use crate::prepare::prepare_weft_cli;

/// The most output we keep from a finished `weft` run, per pipe.
const MAX_OUTPUT: u64 = 1024 * 1024;

/// How to start `weft listen`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeftListen {
    /// Arguments after `weft listen --ip 127.0.0.1 --port 0`, e.g. `["--perf"]`.
    pub args: Vec<String>,
    /// Listen on these multiaddrs (`--listen`, e.g. `/ip4/127.0.0.1/udp/0/quic-v1`)
    /// instead of `--ip 127.0.0.1 --port 0` (TCP); the first one is the address the
    /// [`ListeningPeer`] reports.
    pub listen: Vec<String>,
    /// Run it under `prlimit --nofile=N:N`, so it may open at most `N` files.
    pub nofile: Option<u64>,
    /// Run `weft relay` (a circuit relay v2 server with the shipped limits)
    /// instead of `weft listen`.
    pub relay: bool,
}

impl WeftListen {
    /// `weft listen` with the shipped defaults.
    pub fn defaults() -> Self {
        Self::default()
    }

    /// `weft relay` with the shipped defaults: `listen`, and a circuit relay v2
    /// server.
    pub fn relay() -> Self {
        Self {
            relay: true,
            ..Self::default()
        }
    }

    /// Adds an argument after `listen`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Listens on `addr` (`--listen ADDR`, repeatable) instead of TCP on 127.0.0.1.
    pub fn listen_on(mut self, addr: impl Into<String>) -> Self {
        self.listen.push(addr.into());
        self
    }

    /// Lowers the open-files limit (soft and hard) to `limit`.
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// Builds the binary if needed (once per process) and starts the listener on
    /// `127.0.0.1`, any port (or on the [`listen_on`](Self::listen_on) addresses).
    pub async fn spawn(&self) -> Result<ListeningPeer> {
        let weft = weft_binary().await?;
        let mut args: Vec<OsString> = Vec::new();
        let program = match self.nofile {
            Some(n) => {
                args.extend([format!("--nofile={n}:{n}"), "--".to_owned()].map(OsString::from));
                args.push(weft.into_os_string());
                std::path::PathBuf::from("prlimit")
            }
            None => weft,
        };
        args.push(if self.relay { "relay" } else { "listen" }.into());
        if self.listen.is_empty() {
            args.extend(["--ip", "127.0.0.1", "--port", "0"].map(OsString::from));
        }
        for addr in &self.listen {
            args.extend(["--listen", addr].map(OsString::from));
        }
        args.extend(self.args.iter().map(OsString::from));
        let label = if self.relay {
            "weft relay"
        } else {
            "weft listen"
        };
        ListeningPeer::spawn_program(label, &program, args).await
    }
}

/// The `weft` binary, built (once per process) on tokio's blocking pool.
pub async fn weft_binary() -> Result<std::path::PathBuf> {
    tokio::task::spawn_blocking(prepare_weft_cli)
        .await
        .map_err(|e| HarnessError::Prepare {
            participant: "weft".to_owned(),
            message: format!("preparation task failed: {e}"),
        })?
}

/// A finished `weft` run.
#[derive(Debug, Clone)]
pub struct WeftRun {
    /// How it exited; `None` when the harness killed it at its limit.
    pub status: Option<ExitStatus>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// From start to exit (or to the kill).
    pub elapsed: Duration,
}

impl WeftRun {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `weft args...` to completion, killing it after `limit`.
pub async fn run_weft(args: &[String], limit: Duration) -> Result<WeftRun> {
    let weft = weft_binary().await?;
    let started = Instant::now();
    let mut child = Command::new(&weft)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HarnessError::Spawn {
            program: weft.display().to_string(),
            source,
        })?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| HarnessError::Io(std::io::Error::other("child has no stdout pipe")))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| HarnessError::Io(std::io::Error::other("child has no stderr pipe")))?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let run = async {
        let mut stdout = (&mut stdout).take(MAX_OUTPUT);
        let mut stderr = (&mut stderr).take(MAX_OUTPUT);
        let (o, e) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        o?;
        e?;
        child.wait().await
    };
    let status = match tokio::time::timeout(limit, run).await {
        Ok(status) => Some(status?),
        Err(_) => None,
    };
    let elapsed = started.elapsed();
    Ok(WeftRun {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        elapsed,
    })
}
