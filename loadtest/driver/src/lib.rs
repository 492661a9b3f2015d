//! The pure parts of the load driver: reading a process's CPU time and peak memory from
//! `/proc`, and the summary statistics it prints. The driver itself is `src/main.rs`.

use std::time::Duration;

/// CPU time of one process in clock ticks, as `/proc/<pid>/stat` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// utime + stime: the process's own threads.
    pub own: u64,
    /// cutime + cstime: children it has waited for (git daemon's upload-packs).
    pub children: u64,
}

impl CpuTicks {
    pub fn total(self) -> u64 {
        self.own + self.children
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<CpuTicks> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(CpuTicks {
        own: field(14)? + field(15)?,
        children: field(16)? + field(17)?,
    })
}

/// `VmHWM` (peak resident set) in KiB from `/proc/<pid>/status`.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One reading of a live process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    pub cpu: CpuTicks,
    pub peak_rss_kib: u64,
}

/// Reads `/proc/<pid>/{stat,status}`; None once the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu: parse_stat(&stat)?,
        peak_rss_kib: parse_vm_hwm_kib(&status).unwrap_or(0),
    })
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`; None when empty.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Seconds with millisecond precision, for tables.
pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A name with spaces and a parenthesis, as `(sd-pam)` or `(tokio (x))` can be.
        let text = "4242 (weird (name) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 3 4 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(CpuTicks {
                own: 325,
                children: 7
            })
        );
        assert_eq!(parse_stat(text).unwrap().total(), 332);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.peak_rss_kib > 0);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status =
            "Name:\tnats-server\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(51234));
        assert_eq!(parse_vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        let v = ms(&[50, 10, 40, 20, 30]);
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
