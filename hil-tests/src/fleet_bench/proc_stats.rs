//! CPU time and memory of a process, from /proc.

use crate::stack::{StackError, StackResult};

/// A reading of `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    /// User + system CPU time so far.
    pub cpu_seconds: f64,
    /// Resident set size now.
    pub rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`; 0 if the kernel does not say).
    pub hwm_kib: u64,
}

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

impl ProcStats {
    pub fn read(pid: u32) -> StackResult<Self> {
        let stat_path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&stat_path)
            .map_err(|e| StackError::io(std::path::Path::new(&stat_path), e))?;
        let status_path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&status_path)
            .map_err(|e| StackError::io(std::path::Path::new(&status_path), e))?;
        Self::parse(&stat, &status)
            .ok_or_else(|| StackError::Other(format!("cannot parse /proc/{pid}/stat or status")))
    }

    /// Parses the two files; the command name in `stat` may contain spaces and
    /// parentheses, so fields are counted from the last `)`.
    pub fn parse(stat: &str, status: &str) -> Option<Self> {
        let after_comm = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // After the comm: state(0) ppid(1) ... utime(11) stime(12).
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        let kib = |key: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some(Self {
            cpu_seconds: (utime + stime) / USER_HZ,
            rss_kib: kib("VmRSS:")?,
            hwm_kib: kib("VmHWM:").unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat =
            "4242 (edge gate) way) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        let status = "Name:\tedge-gateway\nVmHWM:\t   30720 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        let s = ProcStats::parse(stat, status).unwrap();
        assert_eq!(s.rss_kib, 20480);
        assert_eq!(s.hwm_kib, 30720);
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9);
        assert!(ProcStats::parse("garbage", status).is_none());
    }

    #[test]
    fn reads_this_process() {
        let s = ProcStats::read(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
    }
}
