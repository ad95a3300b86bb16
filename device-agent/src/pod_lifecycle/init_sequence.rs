//! Init and sidecar containers, the kubelet's way: init containers run one at a time,
//! in order, each to completion before the next (a failure fails the pod under
//! `restartPolicy: Never`, else it is retried with the crash-loop back-off); a sidecar
//! (an init container with `restartPolicy: Always`) is started in its turn, the next one
//! waits until it is started (running, startup probe passed), and it keeps running and
//! is restarted whatever the pod's policy. The pod's containers start once every init
//! container is done. When they have finished for good, the sidecars are stopped in
//! reverse order, and at teardown they go after the containers.

use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{ContainerSpec, PodSpec, RestartPolicy};

use super::PodLifecycle;
use crate::container_runtime::{ContainerSnapshot, RunState};

/// Where a pod's init containers stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitProgress {
    /// Every init container completed (sidecars: started): the containers may run.
    Done,
    /// Init container `index` (0-based) is not done yet.
    Waiting { index: usize },
    /// Init container `index` failed under `restartPolicy: Never`: the pod failed.
    Failed { index: usize },
}

/// The restart policy a container of `spec` follows: the pod's for its containers,
/// `Always` for a sidecar, and for an init container `OnFailure` (`Never` when the pod
/// says so).
pub fn restart_policy_of(spec: &PodSpec, name: &str) -> RestartPolicy {
    match spec.init_containers.iter().find(|c| c.name == name) {
        Some(c) if c.is_sidecar() => RestartPolicy::Always,
        Some(_) if spec.restart_policy == RestartPolicy::Never => RestartPolicy::Never,
        Some(_) => RestartPolicy::OnFailure,
        None => spec.restart_policy,
    }
}

/// Whether `name` is a sidecar of `spec`.
pub fn is_sidecar(spec: &PodSpec, name: &str) -> bool {
    spec.init_containers
        .iter()
        .any(|c| c.name == name && c.is_sidecar())
}

impl PodLifecycle {
    /// Where the pod's init sequence stands, from the containers found.
    pub(super) fn init_progress(&self, spec: &PodSpec) -> InitProgress {
        for (index, c) in spec.init_containers.iter().enumerate() {
            let current = self.instances(&spec.uid, &c.name).into_iter().next();
            if c.is_sidecar() {
                if !current.is_some_and(|cur| self.sidecar_started(spec, c, &cur)) {
                    return InitProgress::Waiting { index };
                }
                continue;
            }
            match current.as_ref().map(|cur| (cur, self.exit_code(cur))) {
                Some((cur, Some(0))) if !self.in_old_sandbox(spec, cur) => {}
                Some((cur, Some(_)))
                    if spec.restart_policy == RestartPolicy::Never
                        && !self.in_old_sandbox(spec, cur) =>
                {
                    return InitProgress::Failed { index };
                }
                _ => return InitProgress::Waiting { index },
            }
        }
        InitProgress::Done
    }

    /// Exit code of a terminated instance (a start error counts as 128).
    fn exit_code(&self, cur: &ContainerSnapshot) -> Option<i32> {
        match &cur.state {
            RunState::Exited {
                exit_code, error, ..
            } => Some(if error.is_some() && *exit_code == 0 {
                128
            } else {
                *exit_code
            }),
            RunState::Created if self.start_failed.contains_key(&cur.id) => Some(128),
            _ => None,
        }
    }

    /// A sidecar is started once it runs, its postStart hook returned and its startup
    /// probe (if any) passed.
    fn sidecar_started(&self, spec: &PodSpec, c: &ContainerSpec, cur: &ContainerSnapshot) -> bool {
        matches!(cur.state, RunState::Running { .. })
            && !self.in_old_sandbox(spec, cur)
            && !self.in_post_start(&cur.id)
            && self.probe_state(&cur.id, c).started
    }

    /// Drives the init sequence one step; returns whether the pod's containers may run.
    pub(super) fn reconcile_init(&mut self, spec: &Arc<PodSpec>) -> bool {
        if self.apps_finished(spec) {
            // The pod's containers are done for good: sidecars stop, last one first.
            self.stop_last_sidecar(spec);
            return true;
        }
        if self.apps_started(spec) {
            // Initialized: sidecars are kept running (restarted), nothing else waits.
            for c in spec.init_containers.iter().filter(|c| c.is_sidecar()) {
                self.reconcile_container(spec, c, None);
            }
            return true;
        }
        for (i, c) in spec.init_containers.iter().enumerate() {
            if c.name.is_empty() || spec.containers.iter().any(|a| a.name == c.name) {
                continue;
            }
            if let InitProgress::Failed { .. } = self.init_progress(spec) {
                self.stop_last_sidecar(spec);
                return false;
            }
            self.reconcile_container(spec, c, None);
            match self.init_progress(spec) {
                InitProgress::Done => return true,
                InitProgress::Failed { .. } => {
                    self.stop_last_sidecar(spec);
                    return false;
                }
                InitProgress::Waiting { index } if index <= i => return false,
                InitProgress::Waiting { .. } => {}
            }
        }
        self.init_progress(spec) == InitProgress::Done
    }

    /// A container of the pod was brought up in the current sandbox: the pod is
    /// initialized.
    pub(super) fn apps_started(&self, spec: &PodSpec) -> bool {
        spec.containers.iter().any(|c| {
            self.instances(&spec.uid, &c.name)
                .first()
                .is_some_and(|cur| !self.in_old_sandbox(spec, cur))
        })
    }

    /// Every container of the pod ran and will not be restarted by the pod's policy.
    pub(super) fn apps_finished(&self, spec: &PodSpec) -> bool {
        !spec.init_containers.is_empty()
            && !spec.containers.is_empty()
            && spec.containers.iter().all(|c| {
                let current = self.instances(&spec.uid, &c.name).into_iter().next();
                current.is_some_and(|cur| {
                    self.exit_code(&cur)
                        .is_some_and(|code| !Self::should_restart(spec.restart_policy, code))
                })
            })
    }

    /// Stops the running sidecar that comes last in the spec (the next one goes once it
    /// is stopped).
    fn stop_last_sidecar(&mut self, spec: &PodSpec) {
        let grace = Duration::from_secs(spec.termination_grace_period_seconds);
        let last = spec.init_containers.iter().rev().find_map(|c| {
            self.instances(&spec.uid, &c.name)
                .into_iter()
                .find(|i| c.is_sidecar() && matches!(i.state, RunState::Running { .. }))
        });
        if let Some(running) = last {
            self.tear_down(&running, grace, Some(spec));
        }
    }

    /// Of a pod's containers to tear down, those to stop now: everything but the
    /// sidecars and the infra container first, then the sidecars one at a time from the
    /// last, then the infra container.
    pub(super) fn teardown_wave(
        spec: Option<&PodSpec>,
        mine: Vec<ContainerSnapshot>,
    ) -> Vec<ContainerSnapshot> {
        let sidecar =
            |c: &ContainerSnapshot| spec.is_some_and(|s| is_sidecar(s, &c.identity.container_name));
        let (sidecars, rest): (Vec<_>, Vec<_>) = mine.into_iter().partition(sidecar);
        let rest = Self::teardown_order(rest);
        if !rest.iter().all(|c| c.identity.is_sandbox()) || sidecars.is_empty() {
            return rest;
        }
        let order = |c: &ContainerSnapshot| -> usize {
            spec.and_then(|s| {
                s.init_containers
                    .iter()
                    .position(|i| i.name == c.identity.container_name)
            })
            .unwrap_or(0)
        };
        let last = sidecars.iter().map(order).max().unwrap_or(0);
        sidecars.into_iter().filter(|c| order(c) == last).collect()
    }
}

#[cfg(test)]
mod tests;
