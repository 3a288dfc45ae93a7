//! What a process costs, read from `/proc/PID`: CPU time (`stat`: utime + stime of every
//! thread, in clock ticks; `schedstat`: one thread's time on a core, in ns) and memory
//! (`status`: VmRSS now, VmHWM the peak).

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux x86-64 and
/// arm64).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&text)
        .map(|ticks| ticks as f64 / TICKS_PER_SECOND)
        .with_context(|| format!("parsing {path}: {text}"))
}

/// utime + stime of a `/proc/PID/stat` line; the command may hold spaces and parentheses, so
/// fields are counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command the state is index 0, so utime (field 14) is 11 and stime 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Time the main thread of process `pid` spent on a core (`/proc/PID/schedstat`, first
/// field), in seconds: exact for a single-threaded process such as snmpd.
pub fn run_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/schedstat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.split_whitespace()
        .next()
        .and_then(|ns| ns.parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .with_context(|| format!("parsing {path}: {text}"))
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the largest resident size since the process started.
    pub hwm_kib: u64,
    /// RssAnon: the part of VmRSS that is anonymous memory (heap, stacks): what the agent's
    /// data costs.
    pub anon_kib: u64,
    /// RssFile: the part of VmRSS mapped from files (the binary's code, the shared libraries):
    /// fixed, whatever the number of devices.
    pub file_kib: u64,
}

/// [`Memory`] of process `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_memory(&text).with_context(|| format!("no VmRSS/VmHWM in {path}"))
}

/// VmRSS, VmHWM, RssAnon and RssFile of a `/proc/PID/status` text.
pub fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_after_the_command() {
        // A command with a space and a parenthesis must not shift the fields.
        let stat = "4242 (coldaisle (x) agent) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    731 269 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(1000));
        assert_eq!(parse_cpu_ticks("4242 (agent) S 1"), None);
    }

    #[test]
    fn memory_reads_rss_peak_and_its_parts() {
        let status = "Name:\tcoldaisle-agent\nVmPeak:\t  99999 kB\nVmHWM:\t   12345 kB\n\
                      VmRSS:\t   11111 kB\nRssAnon:\t    4000 kB\nRssFile:\t    7000 kB\n\
                      RssShmem:\t     111 kB\nThreads:\t3\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss_kib: 11111,
                hwm_kib: 12345,
                anon_kib: 4000,
                file_kib: 7000,
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }
}
