//! A process's CPU time and peak memory, read from `/proc`.

use gitfleet_procs::Children;

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

/// Every child and the driver itself, sampled at one moment, in start order.
pub type Snapshot = Vec<(String, ProcSample)>;

/// The driver's own row: it generates the repository and its `git` children count here.
pub const DRIVER: &str = "loadtest (this driver)";

/// A child gone already reads as zero rather than failing the run: the run checks
/// separately that every child is alive.
pub fn snapshot(children: &Children) -> Snapshot {
    let mut out: Snapshot = children
        .pids()
        .into_iter()
        .map(|(name, pid)| (name, sample(pid).unwrap_or_default()))
        .collect();
    out.push((
        DRIVER.to_string(),
        sample(std::process::id()).unwrap_or_default(),
    ));
    out
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
}
