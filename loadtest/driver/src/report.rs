//! The report: a Markdown section for BENCHMARKS.md with the command that reproduces it,
//! the machine, the timings, and CPU and peak memory per process per phase.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use crate::args::{Args, Shape};
use crate::procfs::{ProcSample, Snapshot};

/// What was measured.
pub struct Figures {
    pub converged: Duration,
    pub writes_took: Duration,
    pub per_app: Vec<Duration>,
    pub webhook: Vec<Duration>,
    /// ConfigMaps named `load` found through the Kubernetes API.
    pub found: usize,
    /// Objects cluster-sim says it holds (0 if its admin endpoint did not answer).
    pub admin_objects: u64,
    /// `--shape hooked`: what the write logs say of the PreSync hook Jobs.
    pub hooks: Option<HookFigures>,
    /// What the bus carried from the first write until every app was done.
    pub bus_create: crate::stack::BusCounts,
    /// Every process sampled at the start and end of `--steady-seconds` of idling.
    pub steady: Option<(Snapshot, Snapshot)>,
    pub kill: Option<crate::measure::Kill>,
}

/// The hook Jobs, counted from cluster-sim's write logs when every app was done.
#[derive(Debug, Default, Clone)]
pub struct HookFigures {
    /// Apps whose hook Job was created exactly once.
    pub exactly_once: usize,
    /// Creations in all.
    pub created: usize,
    /// Apps whose hook was never created.
    pub never: Vec<String>,
    /// Apps whose hook was created more than once.
    pub repeated: Vec<String>,
    /// Writes to the hook Jobs other than deletes and dry runs (creations included).
    pub writes: usize,
    /// Deletes of hook Jobs that succeeded (`HookSucceeded`).
    pub deleted: usize,
    /// Hook Jobs still in the clusters.
    pub jobs_left: usize,
    /// Creations in all after the webhook runs (each sync of app 0 runs its hook again).
    pub created_by_end: usize,
}

impl Report {
    /// What makes the run a failure although it finished: a hook not run exactly once.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = &self.figures.kill
            && k.owned_again.is_none()
        {
            out.push(
                "the killed members' partitions were not all held by others within 120 s".into(),
            );
        }
        if let Some(h) = &self.figures.hooks {
            if !h.never.is_empty() {
                out.push(format!(
                    "{} apps never had their hook Job created: {}",
                    h.never.len(),
                    first(&h.never)
                ));
            }
            if !h.repeated.is_empty() {
                out.push(format!(
                    "{} apps had their hook Job created more than once: {}",
                    h.repeated.len(),
                    first(&h.repeated)
                ));
            }
        }
        out
    }
}

fn first(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s += ", ...";
    }
    s
}

/// Every process sampled at the ends of the phases, so CPU can be split by phase.
pub struct Snapshots {
    /// Start-up done: every partition has an owner.
    pub ready: Snapshot,
    pub converged: Snapshot,
    /// After the webhook runs.
    pub end: Snapshot,
}

/// Where and when the figures were taken; they mean little without it.
pub struct Machine {
    /// `2026-11-29 22:39 UTC`.
    pub date: String,
    /// `2 cores (CPU model), 8000000 kB memory`.
    pub description: String,
    pub cores: usize,
    /// Clock ticks per second: the unit of `/proc/<pid>/stat`'s CPU times.
    pub clk_tck: f64,
}

impl Machine {
    pub fn this() -> Machine {
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
                })
            })
            .unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()))
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let clk_tck = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Machine {
            date,
            description: format!("{cores} cores ({cpu}), {mem} memory"),
            cores,
            clk_tck,
        }
    }
}

pub struct Report {
    pub args: Args,
    pub figures: Figures,
    pub snapshots: Snapshots,
    pub machine: Machine,
}

impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (args, f, m) = (&self.args, &self.figures, &self.machine);
        let p = |v: &[Duration], q: f64| percentile(v, q).map(secs).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "\n## loadtest: {} apps ({}) on {} clusters, {} ms API latency{}\n",
            args.apps,
            args.shape.as_str(),
            args.clusters,
            args.latency_ms,
            if args.precreate_namespaces {
                ", namespaces created beforehand"
            } else if args.appset_services > 0 {
                ", generated by one ApplicationSet"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "Command: `{}`  \nDate: {}  \nMachine: {}\n",
            command_line(args),
            m.date,
            m.description
        )?;
        writeln!(out, "| what | figure |\n|---|---|")?;
        writeln!(
            out,
            "| create-to-Synced, all {} apps Synced, Healthy and operation Succeeded (from the first write to KV `applications`) | {} s |",
            args.apps,
            secs(f.converged)
        )?;
        writeln!(
            out,
            "| per app, from the first write: p50 / p90 / max | {} / {} / {} s |",
            p(&f.per_app, 50.0),
            p(&f.per_app, 90.0),
            p(&f.per_app, 100.0)
        )?;
        writeln!(
            out,
            "| throughput | {:.1} apps/s |",
            f.per_app.len() as f64 / f.converged.as_secs_f64()
        )?;
        if args.appset_services > 0 {
            writeln!(
                out,
                "| writing the one ApplicationSet (the controller writes the apps) | {} s |",
                secs(f.writes_took)
            )?;
        } else {
            writeln!(
                out,
                "| writing the {} Applications ({} in flight) | {} s |",
                args.apps,
                args.create_concurrency,
                secs(f.writes_took)
            )?;
        }
        writeln!(
            out,
            "| ConfigMaps found through the Kubernetes API / objects in cluster-sim | {} / {} |",
            f.found, f.admin_objects
        )?;
        if let Some(h) = &f.hooks {
            writeln!(
                out,
                "| PreSync hook Jobs created when all were done (write log): apps with exactly one / creations / apps with none / apps with more | {} / {} / {} / {} |",
                h.exactly_once,
                h.created,
                h.never.len(),
                h.repeated.len()
            )?;
            writeln!(
                out,
                "| hook Job writes (no dry runs, no deletes) / deletes / Jobs left | {} / {} / {} |",
                h.writes, h.deleted, h.jobs_left
            )?;
            writeln!(
                out,
                "| hook Jobs created by the end (after the webhook runs' syncs of app 0) | {} |",
                h.created_by_end
            )?;
        }
        if let Some(k) = &f.kill {
            writeln!(
                out,
                "| SIGKILL of a diff worker and a sync executor at {} s: their partitions all held by others again after | {} |",
                secs(k.after),
                k.owned_again
                    .map(|d| format!("{} s", secs(d)))
                    .unwrap_or_else(|| "not within 120 s".into())
            )?;
        }
        let per_app = |n: u64| n as f64 / args.apps.max(1) as f64;
        writeln!(
            out,
            "| bus, create-to-Synced: messages published / JetStream API calls / KiB, per app | {:.1} / {:.1} / {:.1} |",
            per_app(f.bus_create.messages),
            per_app(f.bus_create.jetstream_api),
            per_app(f.bus_create.bytes) / 1024.0
        )?;
        writeln!(
            out,
            "| webhook-to-Synced, one app, {} runs: median (min, max) | {} s ({}, {}) |",
            f.webhook.len(),
            p(&f.webhook, 50.0),
            p(&f.webhook, 0.0),
            p(&f.webhook, 100.0)
        )?;
        writeln!(
            out,
            "\n| process | CPU s, start-up | CPU s, create-to-Synced | CPU s, webhook runs | CPU s, total | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|"
        )?;
        let Snapshots {
            ready,
            converged,
            end,
        } = &self.snapshots;
        let cpu = |s: &ProcSample| s.cpu.total() as f64 / m.clk_tck;
        let find = |set: &Snapshot, name: &str| {
            set.iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| *s)
                .unwrap_or_default()
        };
        let mut total = [0.0f64; 4];
        for (name, last) in end {
            let (r, c) = (find(ready, name), find(converged, name));
            let row = [cpu(&r), cpu(&c) - cpu(&r), cpu(last) - cpu(&c), cpu(last)];
            for (t, v) in total.iter_mut().zip(row) {
                *t += v;
            }
            writeln!(
                out,
                "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                row[0],
                row[1],
                row[2],
                row[3],
                last.peak_rss_kib as f64 / 1024.0
            )?;
        }
        writeln!(
            out,
            "| all | {:.2} | {:.2} | {:.2} | {:.2} | |",
            total[0], total[1], total[2], total[3]
        )?;
        if let Some(steady) = self.steady_percent() {
            writeln!(
                out,
                "\nSteady state, {} s idle after convergence, CPU in % of one core: {}.",
                args.steady_seconds,
                steady
                    .iter()
                    .map(|(name, pct)| format!("{name} {pct:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        writeln!(
            out,
            "\nCreate-to-Synced wall time {} s on {} cores: {:.0}% of the machine's CPU was busy in that phase.",
            secs(f.converged),
            m.cores,
            100.0 * total[1] / (f.converged.as_secs_f64() * m.cores as f64)
        )
    }
}

impl Report {
    /// The report as JSON, for tools and for comparing runs: the timings at the top
    /// level (seconds), then CPU seconds (per phase and in all) and peak RSS (bytes) per
    /// process, the command and the machine.
    pub fn json(&self) -> serde_json::Value {
        let (f, m) = (&self.figures, &self.machine);
        let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let Snapshots {
            ready,
            converged,
            end,
        } = &self.snapshots;
        let cpu = |s: Option<&ProcSample>| s.map_or(0.0, |s| s.cpu.total() as f64 / m.clk_tck);
        let find =
            |set: &Snapshot, name: &str| set.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        let processes: serde_json::Map<String, serde_json::Value> = end
            .iter()
            .map(|(name, last)| {
                let (r, c) = (
                    cpu(find(ready, name).as_ref()),
                    cpu(find(converged, name).as_ref()),
                );
                (
                    name.clone(),
                    serde_json::json!({
                        "cpu_seconds": cpu(Some(last)),
                        "cpu_seconds_startup": r,
                        "cpu_seconds_create_to_synced": c - r,
                        "cpu_seconds_webhook_runs": cpu(Some(last)) - c,
                        "peak_rss_bytes": last.peak_rss_kib * 1024,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "apps": self.args.apps,
            "clusters": self.args.clusters,
            "shape": self.args.shape.as_str(),
            "latency_ms": self.args.latency_ms,
            "create_to_synced_seconds": f.converged.as_secs_f64(),
            "first_synced_seconds": seconds(percentile(&f.per_app, 0.0)),
            "synced_p50_seconds": seconds(percentile(&f.per_app, 50.0)),
            "webhook_to_synced_p50_seconds": seconds(percentile(&f.webhook, 50.0)),
            "webhook_to_synced_p99_seconds": seconds(percentile(&f.webhook, 99.0)),
            "webhook_runs": f.webhook.len(),
            "killed_after_seconds": f.kill.as_ref().map(|k| k.after.as_secs_f64()),
            "owned_again_after_kill_seconds": f.kill.as_ref().and_then(|k| k.owned_again).map(|d| d.as_secs_f64()),
            "bus_messages_create_to_synced": f.bus_create.messages,
            "bus_bytes_create_to_synced": f.bus_create.bytes,
            "jetstream_api_calls_create_to_synced": f.bus_create.jetstream_api,
            "processes": processes,
            "steady_cpu_percent_of_a_core": self.steady_percent().map(|s| s.into_iter().map(|(n, p)| (n, serde_json::json!(p))).collect::<serde_json::Map<_, _>>()),
            "command": command_line(&self.args),
            "date": m.date,
            "machine": m.description,
        })
    }

    /// CPU of each process over the steady-state window, in % of one core, and the sum
    /// of gitfleet's own services (not nats-server, cluster-sim, git or the driver).
    fn steady_percent(&self) -> Option<Vec<(String, f64)>> {
        let (before, after) = self.figures.steady.as_ref()?;
        let window = self.args.steady_seconds as f64 * self.machine.clk_tck;
        let mut out = Vec::new();
        let mut services = 0.0;
        for (name, last) in after {
            let first = before
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.cpu.total())
                .unwrap_or(0);
            let pct = 100.0 * last.cpu.total().saturating_sub(first) as f64 / window;
            if ![
                "nats-server",
                "cluster-sim",
                "git daemon",
                crate::procfs::DRIVER,
            ]
            .contains(&name.as_str())
            {
                services += pct;
            }
            out.push((name.clone(), pct));
        }
        out.insert(0, ("gitfleet services".to_string(), services));
        Some(out)
    }

    /// Writes [`Report::json`] into `dir` (made if missing), named by when, how many
    /// apps, on how many clusters; returns the file.
    pub fn write_json(&self, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        let file = dir.join(format!("{}.json", self.file_stem()));
        std::fs::create_dir_all(dir)?;
        std::fs::write(&file, serde_json::to_vec_pretty(&self.json())?)?;
        Ok(file)
    }

    fn file_stem(&self) -> String {
        let date: String = self
            .machine
            .date
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        format!(
            "{date}-{}-apps-{}-clusters-{}",
            self.args.apps,
            self.args.clusters,
            self.args.shape.as_str()
        )
    }
}

/// The command that repeats this run: the flags that change the figures, defaults included.
fn command_line(args: &Args) -> String {
    let mut extra = String::new();
    if args.shape != Shape::Configmap {
        extra += &format!(" --shape {}", args.shape.as_str());
    }
    if args.ready_delay_ms != 500 {
        extra += &format!(" --ready-delay-ms {}", args.ready_delay_ms);
    }
    if args.refresh_seconds != 3600 {
        extra += &format!(" --refresh-seconds {}", args.refresh_seconds);
    }
    if args.precreate_namespaces {
        extra += " --precreate-namespaces";
    }
    for (flag, n) in [
        ("--diff-workers", args.diff_workers),
        ("--executors", args.executors),
        ("--renderers", args.renderers),
    ] {
        if n != 1 {
            extra += &format!(" {flag} {n}");
        }
    }
    if let Some(k) = args.kill_after_seconds {
        extra += &format!(" --kill-after-seconds {k}");
    }
    if args.steady_seconds > 0 {
        extra += &format!(" --steady-seconds {}", args.steady_seconds);
    }
    if let Some(d) = args.wave_delay_seconds {
        extra += &format!(" --wave-delay-seconds {d}");
    }
    if let Some(c) = args.cluster_concurrency {
        extra += &format!(" --cluster-concurrency {c}");
    }
    if args.appset_services > 0 {
        return format!(
            "cargo xtask loadtest -- --appset-services {} --clusters {} --latency-ms {}{extra}",
            args.appset_services, args.clusters, args.latency_ms
        );
    }
    format!(
        "cargo xtask loadtest -- --apps {} --clusters {} --latency-ms {}{extra}",
        args.apps, args.clusters, args.latency_ms
    )
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
    use crate::procfs::CpuTicks;
    use clap::Parser;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v = ms(&[50, 10, 40, 20, 30]);
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_report_splits_cpu_by_phase() {
        let at = |ticks: u64, rss_mib: u64| ProcSample {
            cpu: CpuTicks {
                own: ticks,
                children: 0,
            },
            peak_rss_kib: rss_mib * 1024,
        };
        let snap = |nats: u64, me: u64| {
            vec![
                ("nats-server".to_string(), at(nats, 31)),
                ("loadtest (this driver)".to_string(), at(me, 16)),
            ]
        };
        let report = Report {
            args: Args::parse_from([
                "loadtest",
                "--apps",
                "4",
                "--clusters",
                "2",
                "--wave-delay-seconds",
                "0.5",
            ]),
            figures: Figures {
                converged: Duration::from_millis(2000),
                writes_took: Duration::from_millis(25),
                per_app: ms(&[400, 1000, 1500, 2000]),
                webhook: ms(&[290, 280, 300]),
                found: 4,
                admin_objects: 8,
                hooks: None,
                bus_create: crate::stack::BusCounts {
                    messages: 100,
                    bytes: 40_960,
                    jetstream_api: 20,
                },
                steady: None,
                kill: None,
            },
            snapshots: Snapshots {
                ready: snap(10, 5),
                converged: snap(110, 6),
                end: snap(160, 30),
            },
            machine: Machine {
                date: "2026-12-01 10:00 UTC".into(),
                description: "2 cores (Test CPU), 8000000 kB memory".into(),
                cores: 2,
                clk_tck: 100.0,
            },
        };
        let expected = "
## loadtest: 4 apps (configmap) on 2 clusters, 0 ms API latency

Command: `cargo xtask loadtest -- --apps 4 --clusters 2 --latency-ms 0 --wave-delay-seconds 0.5`  
Date: 2026-12-01 10:00 UTC  
Machine: 2 cores (Test CPU), 8000000 kB memory

| what | figure |
|---|---|
| create-to-Synced, all 4 apps Synced, Healthy and operation Succeeded (from the first write to KV `applications`) | 2.000 s |
| per app, from the first write: p50 / p90 / max | 1.000 / 2.000 / 2.000 s |
| throughput | 2.0 apps/s |
| writing the 4 Applications (32 in flight) | 0.025 s |
| ConfigMaps found through the Kubernetes API / objects in cluster-sim | 4 / 8 |
| bus, create-to-Synced: messages published / JetStream API calls / KiB, per app | 25.0 / 5.0 / 10.0 |
| webhook-to-Synced, one app, 3 runs: median (min, max) | 0.290 s (0.280, 0.300) |

| process | CPU s, start-up | CPU s, create-to-Synced | CPU s, webhook runs | CPU s, total | peak RSS MiB |
|---|---:|---:|---:|---:|---:|
| nats-server | 0.10 | 1.00 | 0.50 | 1.60 | 31 |
| loadtest (this driver) | 0.05 | 0.01 | 0.24 | 0.30 | 16 |
| all | 0.15 | 1.01 | 0.74 | 1.90 | |

Create-to-Synced wall time 2.000 s on 2 cores: 25% of the machine's CPU was busy in that phase.
";
        assert_eq!(report.to_string(), expected);
    }
}
