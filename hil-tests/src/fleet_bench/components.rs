//! CPU and memory of the processes of a run (the gateway and, on the real control
//! plane, kube-apiserver, etcd, kube-controller-manager and kube-scheduler) between two
//! instants, from /proc; and a progress line every few seconds while the run goes on.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::proc_stats::ProcStats;
use super::watch_counts::WatchCounts;

/// One reading of every process.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    /// By name; `None` when the process was gone.
    stats: Vec<(String, Option<ProcStats>)>,
}

impl Sample {
    pub fn take(pids: &[(String, u32)]) -> Self {
        Self {
            at: Instant::now(),
            stats: pids
                .iter()
                .map(|(name, pid)| (name.clone(), ProcStats::read(*pid).ok()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<ProcStats> {
        self.stats
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| *s)
    }

    /// Seconds from `earlier` to this sample.
    pub fn elapsed_since(&self, earlier: &Sample) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }

    /// CPU time of `name` from `earlier` to this sample, in % of one core.
    pub fn cpu_percent_since(&self, earlier: &Sample, name: &str) -> Option<f64> {
        let seconds = self.elapsed_since(earlier);
        let used = self.get(name)?.cpu_seconds - earlier.get(name)?.cpu_seconds;
        (seconds > 0.0).then(|| 100.0 * used / seconds)
    }
}

/// The figures of one control plane component over a run.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentFigures {
    pub name: String,
    /// CPU over the idle window, % of one core.
    pub cpu_percent_idle: Option<f64>,
    /// CPU from the first device connecting until all nodes were Ready, % of one core.
    pub cpu_percent_connect: Option<f64>,
    /// VmRSS at the end of the idle window.
    pub rss_mib: Option<f64>,
    /// VmHWM (peak RSS) at the end of the idle window.
    pub rss_peak_mib: Option<f64>,
}

/// Figures of every component named in `pids`, from samples at the start and end of
/// the connect phase and of the idle window.
pub fn component_figures(
    pids: &[(String, u32)],
    connect: (&Sample, &Sample),
    idle: (&Sample, &Sample),
) -> Vec<ComponentFigures> {
    pids.iter()
        .map(|(name, _)| {
            let end = idle.1.get(name);
            ComponentFigures {
                name: name.clone(),
                cpu_percent_idle: idle.1.cpu_percent_since(idle.0, name),
                cpu_percent_connect: connect.1.cpu_percent_since(connect.0, name),
                rss_mib: end.map(|s| s.rss_kib as f64 / 1024.0),
                rss_peak_mib: end.map(|s| s.hwm_kib as f64 / 1024.0),
            }
        })
        .collect()
}

fn short(name: &str) -> &str {
    match name {
        "kube-apiserver" => "apiserver",
        "kube-controller-manager" => "kcm",
        "kube-scheduler" => "sched",
        other => other,
    }
}

/// Prints, every `period`, Ready and schedulable nodes out of `n` and each process's CPU (% of a core
/// since the last line) and RSS, so a run that breaks down leaves its figures in the
/// log. Stops when the returned [`Monitor`] is dropped.
pub fn spawn_monitor(
    pids: Vec<(String, u32)>,
    counts: WatchCounts,
    n: usize,
    period: Duration,
) -> Monitor {
    Monitor(tokio::spawn(async move {
        let t0 = Instant::now();
        let mut last = Sample::take(&pids);
        loop {
            tokio::time::sleep(period).await;
            let now = Sample::take(&pids);
            let (ready, schedulable) = counts.node_counts();
            let mut line = format!(
                "{:>4} s: {ready}/{n} nodes Ready, {schedulable} schedulable;",
                t0.elapsed().as_secs(),
            );
            for (name, _) in &pids {
                match (now.cpu_percent_since(&last, name), now.get(name)) {
                    (Some(cpu), Some(s)) => {
                        line += &format!(
                            " {} {cpu:.0}% {:.0} MiB,",
                            short(name),
                            s.rss_kib as f64 / 1024.0
                        )
                    }
                    _ => line += &format!(" {} gone,", short(name)),
                }
            }
            eprintln!("[fleet-bench] {}", line.trim_end_matches(','));
            last = now;
        }
    }))
}

/// The progress task of [`spawn_monitor`]; dropping it stops the task (also when a run
/// ends early with an error).
#[derive(Debug)]
pub struct Monitor(tokio::task::JoinHandle<()>);

impl Drop for Monitor {
    fn drop(&mut self) {
        self.0.abort();
    }
}
