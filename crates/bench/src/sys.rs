//! What `/proc` tells about processes on this machine.

use std::time::Duration;

/// CPU time (user + system) this process has used. `/proc` reports it in
/// USER_HZ, which Linux fixes at 100 per second on every architecture.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    cpu_time_of("self")
}

/// CPU time used by process `pid` (all its threads).
pub(crate) fn pid_cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_of(&pid.to_string())
}

fn cpu_time_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is parenthesised and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident set size of process `pid`, in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Cores this process may run on (respects `taskset`).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
