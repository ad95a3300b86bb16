//! Per-cycle outcomes and the run's summary.

use std::time::Duration;

use super::checks::Finding;

/// What happened in one cycle.
#[derive(Debug, Clone)]
pub struct CycleOutcome {
    /// 1-based.
    pub index: usize,
    /// `gateway` or the device id of the killed agent.
    pub victim: String,
    /// How long after the cycle's first operation the SIGKILL came.
    pub kill_after: Duration,
    /// How long the victim stayed down.
    pub downtime: Duration,
    pub operations: Vec<String>,
    /// From the restart (and the last operation) to the first check with no finding;
    /// `None` when the convergence timeout ran out.
    pub converged_in: Option<Duration>,
    /// Pods seen running twice at any check of the cycle.
    pub duplicates: Vec<Finding>,
    /// Findings still there when the convergence timeout ran out.
    pub lost: Vec<Finding>,
    /// For a cycle that took more than 5 s: what it was still waiting for at 5 s.
    pub pending_when_slow: Vec<Finding>,
}

impl CycleOutcome {
    /// Distinct pods of [`CycleOutcome::lost`]: one lost transition each.
    pub fn lost_transitions(&self) -> usize {
        distinct(&self.lost)
    }

    /// Distinct pods of [`CycleOutcome::duplicates`].
    pub fn duplicate_pods(&self) -> usize {
        distinct(&self.duplicates)
    }
}

fn distinct(findings: &[Finding]) -> usize {
    let mut subjects: Vec<&str> = findings.iter().map(Finding::subject).collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects.len()
}

impl std::fmt::Display for CycleOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cycle {:>4}: SIGKILL {} {} ms into [{}], down {} ms: ",
            self.index,
            self.victim,
            self.kill_after.as_millis(),
            self.operations.join(", "),
            self.downtime.as_millis()
        )?;
        match self.converged_in {
            Some(t) => write!(f, "converged in {:.2} s", t.as_secs_f64())?,
            None => write!(f, "DID NOT CONVERGE ({} lost)", self.lost_transitions())?,
        }
        if !self.duplicates.is_empty() {
            write!(f, ", {} pod(s) RUNNING TWICE", self.duplicate_pods())?;
        }
        for finding in self.duplicates.iter().chain(&self.lost) {
            write!(f, "\n    {finding}")?;
        }
        if self.converged_in.is_some() {
            for finding in &self.pending_when_slow {
                write!(f, "\n    still pending at 5 s: {finding}")?;
            }
        }
        Ok(())
    }
}

/// The summary of a run.
#[derive(Debug, Clone, Default)]
pub struct CrashReport {
    pub seed: u64,
    /// `emulator` or `control plane`.
    pub backend: String,
    pub devices: usize,
    pub cycles_planned: usize,
    pub cycles_run: usize,
    pub operations: usize,
    pub gateway_kills: usize,
    pub agent_kills: usize,
    pub lost_transitions: usize,
    pub duplicate_pods: usize,
    /// Convergence time of every cycle that converged.
    pub convergence: Vec<Duration>,
    /// Details of the cycles that lost or duplicated something (with the logs' tails).
    pub failures: Vec<String>,
}

impl CrashReport {
    /// Nothing lost, nothing duplicated, every planned cycle run.
    pub fn passed(&self) -> bool {
        self.lost_transitions == 0
            && self.duplicate_pods == 0
            && self.cycles_run == self.cycles_planned
    }

    pub fn longest(&self) -> Option<Duration> {
        self.convergence.iter().max().copied()
    }

    pub fn median(&self) -> Option<Duration> {
        let mut v = self.convergence.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    pub fn record(&mut self, outcome: &CycleOutcome) {
        self.cycles_run += 1;
        self.operations += outcome.operations.len();
        if outcome.victim == "gateway" {
            self.gateway_kills += 1;
        } else {
            self.agent_kills += 1;
        }
        self.lost_transitions += outcome.lost_transitions();
        self.duplicate_pods += outcome.duplicate_pods();
        if let Some(t) = outcome.converged_in {
            self.convergence.push(t);
        }
    }
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs =
            |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
        writeln!(
            f,
            "crash cycles, seed {} ({}, {} device(s))",
            self.seed, self.backend, self.devices
        )?;
        writeln!(
            f,
            "  cycles                {} of {}",
            self.cycles_run, self.cycles_planned
        )?;
        writeln!(
            f,
            "  SIGKILLs              {} gateway, {} agent",
            self.gateway_kills, self.agent_kills
        )?;
        writeln!(f, "  pod operations        {}", self.operations)?;
        writeln!(f, "  lost transitions      {}", self.lost_transitions)?;
        writeln!(f, "  duplicate pods        {}", self.duplicate_pods)?;
        writeln!(f, "  convergence median    {}", secs(self.median()))?;
        write!(f, "  convergence longest   {}", secs(self.longest()))?;
        if !self.passed() {
            write!(f, "\nFAILED: repeat with --seed {}", self.seed)?;
        }
        Ok(())
    }
}
