//! The supervisor's decisions, pure: which slot runs, when a trial is committed, when it
//! is rolled back. The loop in [`super::supervisor_loop`] carries out the [`Action`]s.
//!
//! - On start, a staged trial runs; a trial already started when the supervisor itself
//!   started (power loss, crash during the trial) counts as failed.
//! - A trial is committed when the new agent reports healthy before its deadline; it is
//!   rolled back when it exits first or the deadline passes (then it is killed).
//! - A trial staged while an agent runs: the agent is stopped (SIGTERM; its containers
//!   keep running and the next agent adopts them), then the trial starts.
//! - Otherwise a child's exit ends the supervisor with the same status, so systemd's
//!   restart policy applies as to the agent alone (78, retired, is not restarted).

use super::slots::{OtaState, Outcome, Slot};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the state file.
    Save(OtaState),
    /// Start the agent of this slot (after removing a stale health file).
    Run(Slot),
    /// SIGTERM the running agent; its exit comes back as [`Supervisor::exited`].
    Stop,
    /// SIGKILL the running agent and wait for it (its exit is not fed back).
    Kill,
    /// End the supervisor with this status.
    Exit(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    None,
    /// Running the current slot.
    Steady,
    /// Asked to stop so that the staged trial can start.
    StoppingForTrial,
    /// Running the trial slot since (Unix ms).
    OnTrial {
        since_ms: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Supervisor {
    state: OtaState,
    child: Child,
}

impl Supervisor {
    pub fn new(state: OtaState) -> Self {
        Self {
            state,
            child: Child::None,
        }
    }

    pub fn state(&self) -> &OtaState {
        &self.state
    }

    /// Whether a trial runs (the loop then watches the health file and the deadline).
    pub fn on_trial(&self) -> bool {
        matches!(self.child, Child::OnTrial { .. })
    }

    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
        match &self.state.trial {
            Some(trial) if trial.started_at_ms.is_some() => {
                let reason = format!(
                    "the supervisor restarted while version {} was on trial (power loss or crash)",
                    trial.version
                );
                let mut actions = self.roll_back(reason, now_ms);
                actions.push(self.run_current());
                actions
            }
            Some(_) => self.start_trial(now_ms),
            None => vec![self.run_current()],
        }
    }

    /// The running agent reported healthy.
    pub fn healthy(&mut self, now_ms: u64) -> Vec<Action> {
        if !self.on_trial() {
            return Vec::new();
        }
        let Some(trial) = self.state.trial.take() else {
            return Vec::new();
        };
        self.state.current = trial.slot;
        self.state.current_version = Some(trial.version.clone());
        self.state.last_outcome = Some(Outcome::Committed {
            version: trial.version,
            at_ms: now_ms,
        });
        self.child = Child::Steady;
        vec![Action::Save(self.state.clone())]
    }

    /// The running agent exited with `status` (128 + signal when killed by one).
    pub fn exited(&mut self, status: i32, now_ms: u64) -> Vec<Action> {
        match std::mem::replace(&mut self.child, Child::None) {
            Child::StoppingForTrial => self.start_trial(now_ms),
            Child::OnTrial { .. } => {
                let version = self.trial_version();
                let reason = format!(
                    "version {version} exited with status {status} before it reported healthy"
                );
                let mut actions = self.roll_back(reason, now_ms);
                actions.push(self.run_current());
                actions
            }
            Child::Steady | Child::None => vec![Action::Exit(status)],
        }
    }

    /// Time passes: a trial past its deadline is killed and rolled back.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        let Child::OnTrial { since_ms } = self.child else {
            return Vec::new();
        };
        let deadline_ms = self
            .state
            .trial
            .as_ref()
            .map_or(0, |t| t.deadline_seconds.saturating_mul(1000));
        if now_ms < since_ms.saturating_add(deadline_ms) {
            return Vec::new();
        }
        let reason = format!(
            "version {} did not report healthy within {} s",
            self.trial_version(),
            deadline_ms / 1000
        );
        let mut actions = vec![Action::Kill];
        actions.extend(self.roll_back(reason, now_ms));
        actions.push(self.run_current());
        actions
    }

    /// The state file now holds a staged trial (written by `edge-agent ota stage` or the
    /// agent); the running agent is stopped to make way for it.
    pub fn staged(&mut self, state: OtaState) -> Vec<Action> {
        if self.child != Child::Steady || state.pending_trial().is_none() {
            return Vec::new();
        }
        self.state = state;
        self.child = Child::StoppingForTrial;
        vec![Action::Stop]
    }

    fn start_trial(&mut self, now_ms: u64) -> Vec<Action> {
        let Some(trial) = self.state.trial.as_mut() else {
            return vec![self.run_current()];
        };
        trial.started_at_ms = Some(now_ms);
        let slot = trial.slot;
        self.child = Child::OnTrial { since_ms: now_ms };
        vec![Action::Save(self.state.clone()), Action::Run(slot)]
    }

    fn run_current(&mut self) -> Action {
        self.child = Child::Steady;
        Action::Run(self.state.current)
    }

    /// The trial is dropped; `current` (never changed during a trial) runs again.
    fn roll_back(&mut self, reason: String, now_ms: u64) -> Vec<Action> {
        let version = self.trial_version();
        self.state.trial = None;
        self.state.last_outcome = Some(Outcome::RolledBack {
            version,
            reason,
            at_ms: now_ms,
        });
        vec![Action::Save(self.state.clone())]
    }

    fn trial_version(&self) -> String {
        self.state
            .trial
            .as_ref()
            .map(|t| t.version.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
