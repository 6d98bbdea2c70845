//! What a running process holds, read from Linux's `/proc/<pid>`: resident memory
//! (`VmRSS`, `VmHWM`) and open file descriptors.
//!
//! The hostile-peer tests hold `weft listen` to its memory and fd budgets with these.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

fn proc_path(pid: u32, entry: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{entry}"))
}

/// A `KiB` field (`VmRSS:`, `VmHWM:`, ...) of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status"))?;
    parse_status_kib(&status, field).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no {field} line in /proc/{pid}/status"),
        )
    })
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The resident set size of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// The peak resident set size of process `pid` in KiB (`VmHWM`, the high-water mark).
pub fn peak_rss_kib(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmHWM")
}

/// How many file descriptors process `pid` has open (entries of `/proc/<pid>/fd`).
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(proc_path(pid, "fd"))?.count())
}

/// The soft limit on open files of process `pid` (`Max open files` in `/proc/<pid>/limits`).
pub fn fd_limit(pid: u32) -> io::Result<u64> {
    let limits = std::fs::read_to_string(proc_path(pid, "limits"))?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Max open files line"))
}

/// Samples `pid`'s resident memory every `every` for `duration` and returns the largest
/// sample in KiB (a peak that [`peak_rss_kib`] would also count from before the window).
pub async fn max_rss_over(pid: u32, duration: Duration, every: Duration) -> io::Result<u64> {
    let until = Instant::now() + duration;
    let mut max = rss_kib(pid)?;
    while Instant::now() < until {
        tokio::time::sleep(every).await;
        max = max.max(rss_kib(pid)?);
    }
    Ok(max)
}

/// Polls `pid`'s open fd count every 250 ms until `done(count)` holds or `timeout`
/// passes; returns the last count and whether `done` held.
pub async fn wait_for_fds(
    pid: u32,
    timeout: Duration,
    done: impl Fn(usize) -> bool,
) -> io::Result<(usize, bool)> {
    let until = Instant::now() + timeout;
    loop {
        let count = open_fds(pid)?;
        if done(count) {
            return Ok((count, true));
        }
        if Instant::now() >= until {
            return Ok((count, false));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Mebibytes from KiB, for messages.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tweft\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        let rss = rss_kib(pid).unwrap();
        assert!(rss > 0);
        assert!(peak_rss_kib(pid).unwrap() >= rss);
        let before = open_fds(pid).unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(open_fds(pid).unwrap() > before);
        drop(file);
        assert!(fd_limit(pid).unwrap() > 0);
    }
}
