//! Container lifecycle hooks, the kubelet's way: `postStart` runs right after the start
//! (the container is neither started nor ready until it returns; a failure is a
//! `FailedPostStartHook` event and the container is killed, its restart policy applying),
//! `preStop` runs before the stop signal, within the grace period, whose rest is left
//! to SIGTERM → SIGKILL (a failure is a `FailedPreStopHook` event and the stop goes on).
//! Hooks run as [`Effect::RunHook`]s; their [`Outcome::HookDone`] comes back here.

use std::collections::HashMap;
use std::time::Duration;

use edge_protocol::{EventType, LifecycleHandler, PodSpec};

use super::PodLifecycle;
use super::inputs_effects::{ContainerKey, Effect};
use crate::container_runtime::{ContainerSnapshot, RunState};

/// The kubelet gives SIGTERM at least this long after a preStop hook
/// (`minimumGracePeriodInSeconds`).
pub const MIN_GRACE_AFTER_PRE_STOP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    PostStart,
    PreStop,
}

impl HookKind {
    fn event_reason(self) -> &'static str {
        match self {
            HookKind::PostStart => "FailedPostStartHook",
            HookKind::PreStop => "FailedPreStopHook",
        }
    }
}

/// Why a hook failed, as the hook runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("command '{command}' exited with {code}: {output}")]
    ExitCode {
        command: String,
        code: i64,
        output: String,
    },
    #[error("{0}")]
    Exec(String),
    #[error("{0}")]
    Http(String),
    #[error("the hook did not finish within {0:?}")]
    TimedOut(Duration),
}

/// Hooks in flight, by container id.
#[derive(Debug, Default)]
pub(super) struct HooksInFlight {
    post_start: HashMap<String, ContainerKey>,
    /// Grace period the stop was asked with.
    pre_stop: HashMap<String, Duration>,
}

impl PodLifecycle {
    /// True while the container's postStart hook runs (or after it failed, until the
    /// container is gone): not started, not ready, no probes.
    pub(super) fn in_post_start(&self, container_id: &str) -> bool {
        self.hooks.post_start.contains_key(container_id)
    }

    /// The container `id` of `key` started: its postStart hook, if it has one, runs now.
    pub(super) fn run_post_start(&mut self, key: &ContainerKey, id: &str, spec: &PodSpec) {
        let Some(handler) = spec
            .container(&key.1)
            .and_then(|c| c.lifecycle.as_ref()?.post_start.clone())
        else {
            return;
        };
        self.hooks.post_start.insert(id.to_owned(), key.clone());
        let target_ip = self.hook_target_ip(spec, id);
        self.effects.push(Effect::RunHook {
            container_id: id.to_owned(),
            kind: HookKind::PostStart,
            handler,
            target_ip,
            timeout: None,
        });
    }

    /// Stops a running container: its preStop hook first when it has one (and the
    /// grace period is not zero), then SIGTERM → SIGKILL. Callers guard with `stopping`.
    pub(super) fn stop_container(&mut self, c: &ContainerSnapshot, grace: Duration) {
        let key = (
            c.identity.pod_uid.clone(),
            c.identity.container_name.clone(),
        );
        let pre_stop = self
            .container_spec(&key)
            .and_then(|(pod, spec)| Some((pod, spec.lifecycle?.pre_stop?)));
        match pre_stop {
            Some((pod, handler)) if !grace.is_zero() => {
                self.hooks.pre_stop.insert(c.id.clone(), grace);
                let target_ip = self.hook_target_ip(&pod, &c.id);
                self.effects.push(Effect::RunHook {
                    container_id: c.id.clone(),
                    kind: HookKind::PreStop,
                    handler,
                    target_ip,
                    timeout: Some(grace),
                });
            }
            _ => self.effects.push(Effect::Stop {
                id: c.id.clone(),
                grace,
            }),
        }
    }

    pub(super) fn on_hook_done(
        &mut self,
        container_id: String,
        kind: HookKind,
        elapsed: Duration,
        result: Result<(), HookError>,
    ) {
        let snapshot = self
            .containers
            .iter()
            .find(|c| c.id == container_id)
            .cloned();
        if let (Err(error), Some(c)) = (&result, &snapshot)
            && let Some((pod, spec)) = self.container_spec(&(
                c.identity.pod_uid.clone(),
                c.identity.container_name.clone(),
            ))
        {
            let message = match (kind, error) {
                (HookKind::PostStart, _) => {
                    let handler = spec.lifecycle.as_ref().and_then(|l| l.post_start.clone());
                    Some(failure_message(handler.as_ref(), &spec.name, &pod, error))
                }
                // As the kubelet: past the grace period is only logged, and the event
                // does not carry the hook's output (it may hold secrets).
                (HookKind::PreStop, HookError::TimedOut(_)) => None,
                (HookKind::PreStop, _) => Some("PreStopHook failed".to_owned()),
            };
            if let Some(message) = message {
                self.event(
                    &pod,
                    Some(&spec.name),
                    EventType::Warning,
                    kind.event_reason(),
                    message,
                );
            }
            if kind == HookKind::PostStart && matches!(c.state, RunState::Running { .. }) {
                self.event(
                    &pod,
                    Some(&spec.name),
                    EventType::Normal,
                    "Killing",
                    "FailedPostStartHook".to_owned(),
                );
            }
        }
        match kind {
            HookKind::PostStart => {
                if result.is_ok() {
                    self.hooks.post_start.remove(&container_id);
                }
                // A failed one stays "in postStart" (never started nor ready) until
                // the kill below ends it.
                let Some(c) = snapshot.filter(|c| matches!(c.state, RunState::Running { .. }))
                else {
                    return;
                };
                if result.is_err() && self.stopping.insert(c.id.clone()) {
                    let grace = self
                        .pods
                        .get(&c.identity.pod_uid)
                        .map_or(c.identity.grace_period_seconds, |p| {
                            p.spec.termination_grace_period_seconds
                        });
                    self.stop_container(&c, Duration::from_secs(grace));
                }
            }
            HookKind::PreStop => {
                let Some(grace) = self.hooks.pre_stop.remove(&container_id) else {
                    return;
                };
                self.effects.push(Effect::Stop {
                    id: container_id,
                    grace: grace.saturating_sub(elapsed).max(MIN_GRACE_AFTER_PRE_STOP),
                });
            }
        }
    }

    /// Where an httpGet hook without `host` goes: the pod IP (loopback on the host
    /// network), as for probes.
    fn hook_target_ip(&self, spec: &PodSpec, container_id: &str) -> String {
        let own_ip = self
            .containers
            .iter()
            .find(|c| c.id == container_id)
            .and_then(|c| c.ip_address.clone());
        self.probe_target_ip(spec, own_ip)
    }

    /// Forgets hooks of containers that are gone.
    pub(super) fn forget_hooks_of_gone(&mut self) {
        let live: std::collections::HashSet<&String> =
            self.containers.iter().map(|c| &c.id).collect();
        self.hooks.post_start.retain(|id, _| live.contains(id));
        self.hooks.pre_stop.retain(|id, _| live.contains(id));
    }
}

/// The kubelet's event message for a failed hook.
fn failure_message(
    handler: Option<&LifecycleHandler>,
    container: &str,
    pod: &PodSpec,
    error: &HookError,
) -> String {
    let pod = format!("{}_{}({})", pod.name, pod.namespace, pod.uid);
    let output = match error {
        HookError::ExitCode { output, .. } => output.as_str(),
        _ => "",
    };
    match handler {
        Some(LifecycleHandler::Exec { command }) => format!(
            "Exec lifecycle hook ([{}]) for Container {container:?} in Pod {pod:?} failed - error: {error}, message: {output:?}",
            command.join(" ")
        ),
        Some(LifecycleHandler::HttpGet { path, .. }) => format!(
            "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {error}, message: \"\""
        ),
        Some(LifecycleHandler::Sleep { .. }) | None => format!(
            "Lifecycle hook for Container {container:?} in Pod {pod:?} failed - error: {error}"
        ),
    }
}

#[cfg(test)]
pub(super) mod tests;
