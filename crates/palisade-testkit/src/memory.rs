//! The process's resident memory, for the memory measurements.

/// Resident set size (`VmRSS` of `/proc/self/status`) in bytes; 0 when it
/// cannot be read.
#[must_use]
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
