//! What a scenario cost the machine: CPU time (user + system) of every process
//! involved, their peak resident memory, and, on PostgreSQL, the server's commits.
//!
//! - this process: `getrusage(RUSAGE_SELF)` deltas (microseconds);
//! - server children and the PostgreSQL server's processes: `utime + stime` of
//!   `/proc/PID/stat` deltas (clock ticks, 10 ms on Linux: use `--n 10000` when a
//!   scenario's CPU is a few hundred milliseconds);
//! - peak RSS: `VmHWM` of `/proc/PID/status`, this process's reset at the start
//!   (`/proc/self/clear_refs`), the children's from their start (one per run);
//! - memory per in-flight activity: the sum over this process and the children of
//!   (peak RSS − RSS at the start) ÷ activities in flight. PostgreSQL's memory is
//!   not counted (its shared buffers are sized up front).

use std::time::Duration;

/// A process the scenario involves.
#[derive(Clone, Debug)]
pub(crate) struct Process {
    /// How the metrics name it: `bench`, `server1`, …
    pub(crate) label: String,
    /// `None`: this process.
    pub(crate) pid: Option<u32>,
}

/// Counters at the start of a scenario; [`Meter::finish`] takes the deltas.
pub(crate) struct Meter {
    processes: Vec<(Process, f64, f64)>,
    postgres_cpu_ms: Option<f64>,
}

/// Named figures of one run of one scenario.
pub(crate) type Figures = Vec<(String, f64)>;

impl Meter {
    /// Samples every process; `postgres`: also the PostgreSQL server's processes.
    pub(crate) fn start(processes: Vec<Process>, postgres: bool) -> Self {
        // Peak RSS from here on (the kernel's high-water mark falls to the current RSS).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let processes = processes
            .into_iter()
            .map(|p| {
                let cpu = cpu_ms(p.pid);
                let rss = status_kib(p.pid, "VmRSS:");
                (p, cpu, rss)
            })
            .collect();
        Self {
            processes,
            postgres_cpu_ms: postgres.then(postgres_cpu_ms),
        }
    }

    /// The figures since [`Meter::start`]: CPU ms per activity (total and per
    /// process), peak RSS per process, and bytes per in-flight activity when
    /// `in_flight` activities were outstanding at once.
    pub(crate) fn finish(&self, activities: u32, in_flight: Option<u32>) -> Figures {
        let per = f64::from(activities.max(1));
        let mut figures = Figures::new();
        let mut cpu_total = 0.0;
        let mut grown_kib = 0.0;
        for (process, cpu_before, rss_before) in &self.processes {
            let cpu = cpu_ms(process.pid) - cpu_before;
            cpu_total += cpu;
            figures.push((
                format!("cpu_ms_per_activity_by_process/{}", process.label),
                cpu / per,
            ));
            let peak = status_kib(process.pid, "VmHWM:");
            figures.push((format!("peak_rss_kib/{}", process.label), peak));
            grown_kib += (peak - rss_before).max(0.0);
        }
        if let Some(before) = self.postgres_cpu_ms {
            let cpu = postgres_cpu_ms() - before;
            cpu_total += cpu;
            figures.push(("cpu_ms_per_activity_by_process/postgres".into(), cpu / per));
        }
        figures.push(("cpu_ms_per_activity".into(), cpu_total / per));
        if let Some(n) = in_flight {
            figures.push((
                "bytes_per_in_flight_activity".into(),
                grown_kib * 1024.0 / f64::from(n.max(1)),
            ));
        }
        figures
    }
}

/// User + system CPU time of a process so far, in milliseconds (NaN if unreadable).
fn cpu_ms(pid: Option<u32>) -> f64 {
    match pid {
        None => nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
            .map(|usage| {
                let ms = |t: nix::sys::time::TimeVal| {
                    Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) * 1000) as u32)
                        .as_secs_f64()
                        * 1000.0
                };
                ms(usage.user_time()) + ms(usage.system_time())
            })
            .unwrap_or(f64::NAN),
        Some(pid) => proc_stat_cpu_ms(pid).unwrap_or(f64::NAN),
    }
}

/// `utime + stime` of `/proc/PID/stat`, with its command name.
fn proc_stat(pid: u32) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE …`: the name may hold spaces and parentheses; the fields
    // after the last `)` start with the state (field 3); utime and stime are 14 and 15.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((comm, (utime + stime) * 1000.0 / TICKS_PER_SECOND))
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux build that matters here.
const TICKS_PER_SECOND: f64 = 100.0;

fn proc_stat_cpu_ms(pid: u32) -> Option<f64> {
    proc_stat(pid).map(|(_, ms)| ms)
}

/// CPU time of every process named `postgres` on this machine (the PostgreSQL
/// server and its backends). Backends that exit within a scenario take their time
/// with them; the benchmark's connections live as long as the engine.
fn postgres_cpu_ms() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .filter(|(comm, _)| comm == "postgres")
        .map(|(_, ms)| ms)
        .sum()
}

/// A `kB` field of `/proc/PID/status` (NaN if unreadable).
pub(crate) fn status_kib(pid: Option<u32>, field: &str) -> f64 {
    let path = match pid {
        None => "/proc/self/status".to_owned(),
        Some(pid) => format!("/proc/{pid}/status"),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// The 1-minute load average (`/proc/loadavg`).
pub(crate) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
