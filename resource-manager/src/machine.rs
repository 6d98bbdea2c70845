//! The machine facts [`Limits::auto`](crate::Limits::auto) scales from: total memory and
//! the soft open-files limit, read from `/proc` with tolerant parsers and fallbacks.

/// Total memory assumed when `/proc/meminfo` cannot be read or parsed: 8 GiB.
pub const FALLBACK_MEMORY: u64 = 8 << 30;
/// Open-files soft limit assumed when `/proc/self/limits` cannot be read or parsed.
pub const FALLBACK_FDS: u64 = 1024;
/// What an `unlimited` open-files soft limit counts as.
pub const UNLIMITED_FDS: u64 = 1 << 20;

/// What this machine offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Total memory in bytes.
    pub memory: u64,
    /// The soft limit of open file descriptors of this process.
    pub fds: u64,
}

impl Machine {
    /// Reads `/proc/meminfo` and `/proc/self/limits`; each fact that cannot be read falls
    /// back to [`FALLBACK_MEMORY`] or [`FALLBACK_FDS`].
    pub fn detect() -> Machine {
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_mem_total(&text))
            .unwrap_or(FALLBACK_MEMORY);
        let fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| parse_open_files_soft(&text))
            .unwrap_or(FALLBACK_FDS);
        Machine { memory, fds }
    }
}

/// `MemTotal` from the text of `/proc/meminfo`, in bytes (`MemTotal:  16318312 kB`).
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("MemTotal:"))?;
    let mut words = line.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    let scale = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("b") => 1,
        Some("kb") => 1 << 10,
        Some("mb") => 1 << 20,
        Some("gb") => 1 << 30,
        Some(_) => return None,
    };
    value.checked_mul(scale).filter(|&bytes| bytes > 0)
}

/// The soft value of `Max open files` from the text of `/proc/self/limits`
/// (`Max open files   1024   524288   files`); `unlimited` counts as [`UNLIMITED_FDS`].
pub fn parse_open_files_soft(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("Max open files"))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(UNLIMITED_FDS),
        soft => soft.parse().ok().filter(|&n| n > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16318312 kB\nMemFree:         1234567 kB\n";
    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n\
Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn mem_total_in_kib() {
        assert_eq!(parse_mem_total(MEMINFO), Some(16_318_312 * 1024));
    }

    #[test]
    fn mem_total_tolerates_odd_text() {
        assert_eq!(parse_mem_total("MemTotal: 2048"), Some(2048));
        assert_eq!(parse_mem_total("MemFree: 12 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots kB"), None);
        assert_eq!(parse_mem_total("MemTotal: 12 parsecs"), None);
        assert_eq!(parse_mem_total("MemTotal: 0 kB"), None);
        assert_eq!(parse_mem_total(""), None);
    }

    #[test]
    fn open_files_soft_value() {
        assert_eq!(parse_open_files_soft(LIMITS), Some(1024));
    }

    #[test]
    fn open_files_unlimited_and_garbage() {
        assert_eq!(
            parse_open_files_soft("Max open files  unlimited  unlimited  files"),
            Some(UNLIMITED_FDS)
        );
        assert_eq!(parse_open_files_soft("Max open files  x  y  files"), None);
        assert_eq!(parse_open_files_soft("Max processes 10 10"), None);
    }

    #[test]
    fn detects_this_machine() {
        // The real files of this process: on Linux both parse, elsewhere both fall back.
        let machine = Machine::detect();
        assert!(machine.memory > 0);
        assert!(machine.fds > 0);
        if let Ok(text) = std::fs::read_to_string("/proc/self/limits") {
            assert_eq!(Some(machine.fds), parse_open_files_soft(&text));
        }
    }
}
