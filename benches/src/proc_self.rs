//! This process's own figures from `/proc/self` (Linux): memory from `status`, bytes written to
//! disk from `io`. A benchmark reads them before and after what it measures.

/// The number after `name` in `text`, a `/proc` file of `Key: value [unit]` lines. Pure.
pub fn parse_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// The field `name` (with its colon, e.g. `write_bytes:`) of the `/proc` file at `path`, in the
/// file's unit; 0 if the file or the field is missing.
pub fn field(path: &str, name: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse_field(&text, name))
        .unwrap_or(0)
}

/// A memory field of `/proc/self/status` (`VmRSS:`, `VmHWM:`, `RssAnon:`, …) in MB (MiB, as
/// BENCHMARKS.md counts them); 0 if unknown.
pub fn status_mb(name: &str) -> f64 {
    field("/proc/self/status", name) as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_the_number_after_its_name() {
        let status = "Name:\tbench\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_field(status, "VmRSS:"), Some(10_240));
        assert_eq!(parse_field(status, "VmHWM:"), Some(20_480));
        assert_eq!(parse_field(status, "RssAnon:"), None);
        assert_eq!(
            parse_field("rchar: 12\nwrite_bytes: 4096\n", "write_bytes:"),
            Some(4_096)
        );
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(status_mb("VmRSS:") > 0.0);
        assert!(status_mb("VmHWM:") >= status_mb("VmRSS:") - 1.0);
    }
}
