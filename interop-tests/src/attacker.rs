//! Runs the rust-libp2p attacker (`peers/rust-attacker`): stock rust-libp2p 0.57
//! swarms that dial a listener, open `/echo/1.0.0` streams, write into each without
//! end and never read, so that whatever the listener buffers for them stays pinned.
//!
//! ```text
//! rust-libp2p-attacker MULTIADDR [--connections 4] [--streams 64]
//!     each connection comes from its own swarm with its own peer id;
//!     stdout: "ready <connections> <streams per connection>" once every stream is open,
//!     then every 250 ms: "progress <bytes written> <streams that failed>".
//! ```

use std::process::Stdio;
use std::time::Duration;

use multiaddr::Multiaddr;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{HarnessError, Result};
use crate::output::OutputTail;
use crate::prepare::prepare_attacker;

/// What the attacker reported last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackProgress {
    /// Every stream is open.
    pub ready: bool,
    /// Bytes written into all streams so far.
    pub written: u64,
    /// Streams whose write failed (reset by the listener, or the connection closed).
    pub failed_streams: u64,
    /// The process has exited (or closed its stdout).
    pub exited: bool,
}

/// How an attack is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackPlan {
    /// Connections, each from its own peer id.
    pub connections: usize,
    /// `/echo/1.0.0` streams per connection.
    pub streams: usize,
}

impl Default for AttackPlan {
    /// Four connections of 64 `/echo/1.0.0` streams: the issue's memory-pinning attack.
    fn default() -> Self {
        Self {
            connections: 4,
            streams: 64,
        }
    }
}

/// A running attacker process, killed when dropped.
#[derive(Debug)]
pub struct Attacker {
    child: Child,
    progress: watch::Receiver<AttackProgress>,
    stderr: OutputTail,
}

impl Attacker {
    /// Builds the attacker if needed and starts it against `addr` (ending in `/p2p/..`).
    pub async fn spawn(addr: &Multiaddr, plan: &AttackPlan) -> Result<Self> {
        let program = tokio::task::spawn_blocking(prepare_attacker)
            .await
            .map_err(|e| HarnessError::Prepare {
                participant: "rust-libp2p-attacker".to_owned(),
                message: format!("preparation task failed: {e}"),
            })??;
        let mut child = Command::new(&program)
            .arg(addr.to_string())
            .args(["--connections", &plan.connections.to_string()])
            .args(["--streams", &plan.streams.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let stderr = child
            .stderr
            .take()
            .map(OutputTail::drain)
            .unwrap_or_default();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HarnessError::Io(std::io::Error::other("child has no stdout pipe")))?;
        let (report, progress) = watch::channel(AttackProgress::default());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                report.send_modify(|p| parse_line(&line, p));
            }
            report.send_modify(|p| p.exited = true);
        });
        Ok(Self {
            child,
            progress,
            stderr,
        })
    }

    /// The attacker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The latest report.
    pub fn progress(&self) -> AttackProgress {
        *self.progress.borrow()
    }

    /// What the attacker wrote on stderr (the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits until every stream is open.
    pub async fn ready(&mut self, timeout: Duration) -> Result<AttackProgress, String> {
        let waited = tokio::time::timeout(timeout, self.progress.wait_for(|p| p.ready || p.exited))
            .await
            .map(|r| r.map(|p| *p));
        let waited = match waited {
            Err(_) => {
                return Err(format!(
                    "the attacker opened not all its streams within {timeout:?}; stderr:\n{}",
                    self.stderr()
                ))
            }
            Ok(Err(_)) => return Err("the attacker's reporter ended".to_owned()),
            Ok(Ok(p)) => p,
        };
        if !waited.ready {
            return Err(format!(
                "the attacker exited before its streams were open; stderr:\n{}",
                self.stderr()
            ));
        }
        Ok(waited)
    }

    /// Waits until the attacker's writes have stalled, that is, until the bytes written
    /// have not grown for `quiet` (the listener holds all it will take), or `timeout`
    /// passes. Returns the last report and whether the writes stalled.
    pub async fn settled(&self, quiet: Duration, timeout: Duration) -> (AttackProgress, bool) {
        let until = Instant::now() + timeout;
        let mut last = self.progress();
        let mut since = Instant::now();
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.progress();
            if now.written != last.written {
                since = Instant::now();
                last = now;
            } else if since.elapsed() >= quiet {
                return (now, true);
            }
        }
        (self.progress(), false)
    }
}

fn parse_line(line: &str, progress: &mut AttackProgress) {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("ready") => progress.ready = true,
        Some("progress") => {
            let mut number = || words.next().and_then(|w| w.parse().ok());
            if let (Some(written), Some(failed)) = (number(), number()) {
                progress.written = written;
                progress.failed_streams = failed;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_attackers_lines() {
        let mut p = AttackProgress::default();
        parse_line("ready 4 64", &mut p);
        assert!(p.ready);
        parse_line("progress 1048576 3", &mut p);
        assert_eq!((p.written, p.failed_streams), (1_048_576, 3));
        parse_line("progress garbage", &mut p);
        assert_eq!(p.written, 1_048_576);
    }
}
