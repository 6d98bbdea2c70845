//! A long-running program inside a lab namespace (a relay, a listening peer): its
//! stdout read line by line, its stderr kept for messages, killed when dropped.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

use super::netns::NetNs;
use super::LabError;
use crate::output::OutputTail;

/// The longest stdout line kept (longer ones are cut).
const MAX_LINE: u64 = 4096;
/// Lines buffered until read; more are dropped (the pipe is drained regardless).
const MAX_QUEUED_LINES: usize = 256;

/// A program running inside a namespace, killed on drop.
#[derive(Debug)]
pub struct LabProcess {
    label: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: OutputTail,
}

impl LabProcess {
    /// Starts `program args...` inside `ns`; `label` names it in errors.
    pub fn spawn<I, S>(
        ns: &NetNs,
        label: &str,
        program: impl AsRef<OsStr>,
        args: I,
    ) -> Result<Self, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = ns
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Spawn {
                program: label.to_owned(),
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
            .ok_or_else(|| LabError::Io(std::io::Error::other("child has no stdout pipe")))?;
        let (tx, lines) = mpsc::channel(MAX_QUEUED_LINES);
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match (&mut stdout).take(MAX_LINE).read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let _ = tx.try_send(line.trim_end().to_owned());
                    }
                }
            }
        });
        Ok(Self {
            label: label.to_owned(),
            child,
            lines,
            stderr,
        })
    }

    /// The next stdout line for which `matches` holds (earlier lines are skipped),
    /// within `limit`.
    pub async fn line_matching(
        &mut self,
        matches: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Result<String, LabError> {
        let found = tokio::time::timeout(limit, async {
            while let Some(line) = self.lines.recv().await {
                if matches(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err(LabError::Command {
                command: self.label.clone(),
                output: format!(
                    "exited without printing the line; stderr:\n{}",
                    self.stderr()
                ),
            }),
            Err(_) => Err(LabError::Timeout {
                what: format!(
                    "{} (waiting for its line; stderr:\n{})",
                    self.label,
                    self.stderr()
                ),
                limit,
            }),
        }
    }

    /// What it wrote on stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Its process id (`ip netns exec` execs the program: the program's own), `None`
    /// once reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
