//! Load bench: what the operating system says about a process and the machine — CPU time and
//! threads from `/proc/<pid>/stat`, RSS from `/proc/<pid>/status`, open descriptors from
//! `/proc/<pid>/fd`, busy time from `/proc/stat` — and a once-a-second sampler. Linux only.
//! Does file I/O.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

/// Clock ticks per second of `/proc` CPU times (USER_HZ: 100 on every Linux architecture
/// in use; reading `sysconf` would need `unsafe`).
const TICKS_PER_SEC: f64 = 100.0;
/// Most samples a sampler keeps (an hour at one a second); older ones are dropped.
const MAX_SAMPLES: usize = 3600;

/// One reading of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcStat {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Threads.
    pub threads: u64,
    /// Resident set size, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub rss_peak_kib: u64,
    /// Open file descriptors (entries of `/proc/<pid>/fd`); `None` if not readable.
    pub fds: Option<u64>,
}

/// Reads `/proc/<pid>/{stat,status,fd}`; `pid` `None` means this process.
pub fn read_proc(pid: Option<u32>) -> std::io::Result<ProcStat> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    // The command name (field 2) may hold spaces: fields are counted after its closing paren.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| std::io::Error::other("unparsable /proc stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so field n is at index n - 3.
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("{dir}/fd"))
        .ok()
        .map(|entries| entries.count() as u64);
    Ok(ProcStat {
        cpu_ticks: field(14) + field(15),
        threads: field(20),
        rss_kib: kib("VmRSS:"),
        rss_peak_kib: kib("VmHWM:"),
        fds,
    })
}

/// Busy and total CPU ticks of the whole machine (first line of `/proc/stat`).
fn read_machine() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().next() else {
        return (0, 0);
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait are fields 4 and 5 of the cpu line.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The machine's logical CPUs and memory, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Total memory, GiB (`MemTotal` of `/proc/meminfo`).
    pub memory_gib: f64,
    /// The CPU model (`/proc/cpuinfo`), when known.
    pub cpu_model: Option<String>,
}

impl Machine {
    /// Reads this machine's description.
    pub fn read() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        });
        Self {
            cores,
            memory_gib,
            cpu_model,
        }
    }
}

/// One sample of the server, this process (the load generator) and the machine.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Since the sampler started.
    #[serde(serialize_with = "seconds")]
    pub at: Duration,
    /// The server process, when a pid was given and readable.
    pub server: Option<ProcStat>,
    /// This process.
    pub generator: ProcStat,
    /// Busy ticks of the whole machine.
    pub machine_busy: u64,
    /// All ticks of the whole machine.
    pub machine_total: u64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// CPU use between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// The server, in cores (1.0 = one core busy all the time).
    pub server_cores: Option<f64>,
    /// This process, in cores.
    pub generator_cores: f64,
    /// The whole machine, percent of all cores busy.
    pub machine_busy_pct: f64,
}

/// CPU use from `a` to `b`.
pub fn cpu_between(a: &Sample, b: &Sample) -> CpuUse {
    let secs = b.at.saturating_sub(a.at).as_secs_f64().max(1e-3);
    let cores = |x: &ProcStat, y: &ProcStat| {
        y.cpu_ticks.saturating_sub(x.cpu_ticks) as f64 / TICKS_PER_SEC / secs
    };
    let busy = b.machine_busy.saturating_sub(a.machine_busy) as f64;
    let total = b.machine_total.saturating_sub(a.machine_total) as f64;
    CpuUse {
        server_cores: match (&a.server, &b.server) {
            (Some(x), Some(y)) => Some(cores(x, y)),
            _ => None,
        },
        generator_cores: cores(&a.generator, &b.generator),
        machine_busy_pct: if total > 0.0 {
            100.0 * busy / total
        } else {
            0.0
        },
    }
}

/// Samples the server (given its pid), this process and the machine once a second in the
/// background, and on demand. Stops when dropped.
#[derive(Debug)]
pub struct Sampler {
    pid: Option<u32>,
    started: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling; `pid` is the server's process, if known.
    pub fn start(pid: Option<u32>) -> Self {
        let started = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let samples = Arc::clone(&samples);
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                for _ in 0..MAX_SAMPLES {
                    tick.tick().await;
                    let sample = take(pid, started);
                    samples
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(sample);
                }
            }
        });
        Self {
            pid,
            started,
            samples,
            task,
        }
    }

    /// A sample taken now (not added to the series).
    pub fn now(&self) -> Sample {
        take(self.pid, self.started)
    }

    /// The once-a-second series so far.
    pub fn series(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The highest one-second CPU use of the server (or, without a pid, of this process)
    /// between `from` and `to`.
    pub fn peak_cores(&self, from: Duration, to: Duration) -> Option<f64> {
        let series = self.series();
        let window: Vec<&Sample> = series
            .iter()
            .filter(|s| s.at >= from && s.at <= to)
            .collect();
        window
            .windows(2)
            .map(|pair| {
                let cpu = cpu_between(pair[0], pair[1]);
                cpu.server_cores.unwrap_or(cpu.generator_cores)
            })
            .reduce(f64::max)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the process's descriptor count is at most `at_most` or has not changed for
/// 2 s (sockets of closed sessions are released asynchronously), polling every 200 ms for at
/// most `timeout`. Returns at once without a pid.
pub async fn wait_fds_settled(pid: Option<u32>, at_most: Option<u64>, timeout: Duration) {
    let Some(pid) = pid else { return };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<(u64, tokio::time::Instant)> = None;
    while tokio::time::Instant::now() < deadline {
        let Some(fds) = read_proc(Some(pid)).ok().and_then(|s| s.fds) else {
            return;
        };
        if at_most.is_some_and(|limit| fds <= limit) {
            return;
        }
        match last {
            Some((n, since)) if n == fds => {
                if since.elapsed() >= Duration::from_secs(2) {
                    return;
                }
            }
            _ => last = Some((fds, tokio::time::Instant::now())),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn take(pid: Option<u32>, started: Instant) -> Sample {
    let (machine_busy, machine_total) = read_machine();
    Sample {
        at: started.elapsed(),
        server: pid.and_then(|pid| read_proc(Some(pid)).ok()),
        generator: read_proc(None).unwrap_or_default(),
        machine_busy,
        machine_total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read_proc(None).expect("/proc/self");
        assert!(me.threads >= 1);
        assert!(me.rss_kib > 0);
        assert!(me.fds.unwrap_or(0) >= 3, "stdin, stdout, stderr at least");
        let by_pid = read_proc(Some(std::process::id())).expect("/proc/<pid>");
        assert!(by_pid.rss_kib > 0);
        assert!(read_proc(Some(u32::MAX)).is_err());
        let machine = Machine::read();
        assert!(machine.cores >= 1 && machine.memory_gib > 0.0);
    }

    #[test]
    fn cpu_is_ticks_over_time() {
        let stat = |ticks| ProcStat {
            cpu_ticks: ticks,
            ..ProcStat::default()
        };
        let a = Sample {
            at: Duration::from_secs(1),
            server: Some(stat(100)),
            generator: stat(0),
            machine_busy: 0,
            machine_total: 0,
        };
        let b = Sample {
            at: Duration::from_secs(3),
            server: Some(stat(400)),
            generator: stat(100),
            machine_busy: 300,
            machine_total: 400,
        };
        let cpu = cpu_between(&a, &b);
        assert_eq!(cpu.server_cores, Some(1.5));
        assert_eq!(cpu.generator_cores, 0.5);
        assert_eq!(cpu.machine_busy_pct, 75.0);
    }
}
