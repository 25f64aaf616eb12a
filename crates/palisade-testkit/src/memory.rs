//! The process's resident memory, for the memory measurements.

/// A `/proc/self/status` field in bytes; 0 when it cannot be read.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident set size (`VmRSS`) in bytes; 0 when it cannot be read.
#[must_use]
pub fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// Peak resident set size so far (`VmHWM`) in bytes; 0 when it cannot be
/// read.
#[must_use]
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM:")
}
