//! Outcome handling: the results of effects the reconciler asked for (volumes, image,
//! create, start, stop, remove) and probe reports, turned into container memory and the
//! kubelet's events. Decisions on what to do next are left to [`super::reconcile`].

use edge_protocol::{EventType, PullPolicy};

use super::PodLifecycle;
use super::container_memory::{Failure, Op, VolumeState};
use super::inputs_effects::{ContainerKey, Effect, FailureReason, Outcome, ProbeKind, ProbeReport};
use crate::backoff::Backoff;

impl PodLifecycle {
    pub(super) fn on_outcome(&mut self, outcome: Outcome) {
        let now = self.now;
        let timings = self.timings;
        match outcome {
            Outcome::VolumesReady { pod_uid, result } => {
                let Some(pod) = self.pods.get(&pod_uid) else {
                    return;
                };
                let spec = pod.spec.clone();
                let next = match result {
                    Ok(()) => VolumeState::Ready,
                    Err(error) => {
                        let message = error.to_string();
                        let mut backoff = match &pod.volumes {
                            VolumeState::Failed { backoff, .. } => *backoff,
                            _ => Backoff::default(),
                        };
                        backoff.advance(&timings);
                        self.event(
                            &spec,
                            None,
                            EventType::Warning,
                            "FailedMount",
                            format!("MountVolume.SetUp failed: {message}"),
                        );
                        VolumeState::Failed {
                            message,
                            at: now,
                            backoff,
                        }
                    }
                };
                if let Some(pod) = self.pods.get_mut(&pod_uid) {
                    pod.volumes = next;
                }
            }
            Outcome::PullStarted { key } => {
                if let Some((spec, c)) = self.container_spec(&key) {
                    self.event(
                        &spec,
                        Some(&key.1),
                        EventType::Normal,
                        "Pulling",
                        format!("Pulling image \"{}\"", c.image),
                    );
                }
            }
            Outcome::ImageReady { key, pulled } => {
                let Some((spec, c)) = self.container_spec(&key) else {
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.image_ok = true;
                    if m.failure.as_ref().is_some_and(|f| f.reason.is_pull()) {
                        m.failure = None;
                        m.attempt_backoff.reset();
                    }
                }
                let message = if pulled {
                    format!("Successfully pulled image \"{}\"", c.image)
                } else {
                    format!("Container image \"{}\" already present on machine", c.image)
                };
                self.event(&spec, Some(&key.1), EventType::Normal, "Pulled", message);
            }
            Outcome::ImageFailed { key, message } => {
                let Some((spec, c)) = self.container_spec(&key) else {
                    return;
                };
                let never = c.image_pull_policy == PullPolicy::Never;
                let reason = if never {
                    FailureReason::ErrImageNeverPull
                } else {
                    FailureReason::ErrImagePull
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.attempt_backoff.advance(&timings);
                    m.backoff_event_sent = false;
                    m.failure = Some(Failure {
                        reason,
                        message: message.clone(),
                        at: now,
                    });
                }
                if !never {
                    self.event(
                        &spec,
                        Some(&key.1),
                        EventType::Warning,
                        "Failed",
                        format!("Failed to pull image \"{}\": {message}", c.image),
                    );
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {reason}"),
                );
            }
            Outcome::Created { key, id } => {
                self.unlisted_creates.created(&key, &id, now);
                let Some((spec, _)) = self.container_spec(&key) else {
                    // The pod went away meanwhile: the next pass removes the container.
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = Some(Op::Start);
                    m.image_ok = false;
                    m.failure = None;
                    m.attempt_backoff.reset();
                    m.awaiting = Some((id.clone(), now));
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Normal,
                    "Created",
                    format!("Created container {}", key.1),
                );
                if spec.is_terminating() {
                    self.end_pipeline(&key);
                } else {
                    self.effects.push(Effect::Start { key, id });
                }
            }
            Outcome::CreateFailed {
                key,
                reason,
                message,
            } => {
                self.unlisted_creates.failed(&key);
                let Some((spec, _)) = self.container_spec(&key) else {
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.image_ok = false;
                    m.attempt_backoff.advance(&timings);
                    m.failure = Some(Failure {
                        reason,
                        message: message.clone(),
                        at: now,
                    });
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {message}"),
                );
            }
            Outcome::Started { key, id } => {
                self.start_ended(&key, None);
                if let Some((spec, _)) = self.container_spec(&key) {
                    self.run_post_start(&key, &id, &spec);
                }
            }
            Outcome::StartFailed { key, id, message } => {
                self.start_failed.insert(id, message.clone());
                self.start_ended(&key, Some(message));
            }
            Outcome::Stopped { .. } => {}
            Outcome::StopFailed { id, .. } => {
                self.stopping.remove(&id);
            }
            Outcome::Removed { id } => {
                self.containers.retain(|c| c.id != id);
                self.probes.remove(&id);
            }
            Outcome::RemoveFailed { id, .. } => {
                self.removing.remove(&id);
            }
            Outcome::HookDone {
                container_id,
                kind,
                elapsed,
                result,
            } => self.on_hook_done(container_id, kind, elapsed, result),
            Outcome::TerminationMessage {
                container_id,
                message,
            } => self.on_termination_message(container_id, message),
        }
    }

    /// A start was tried: the bring-up of `key` is over, successful unless `error`.
    fn start_ended(&mut self, key: &ContainerKey, error: Option<String>) {
        let Some((spec, _)) = self.container_spec(key) else {
            return;
        };
        self.end_pipeline(key);
        let (event_type, reason, message) = match error {
            None => (
                EventType::Normal,
                "Started",
                format!("Started container {}", key.1),
            ),
            Some(error) => (EventType::Warning, "Failed", format!("Error: {error}")),
        };
        self.event(&spec, Some(&key.1), event_type, reason, message);
    }

    /// The bring-up of `key` (image, create, start) is over.
    fn end_pipeline(&mut self, key: &ContainerKey) {
        if let Some(m) = self.memory(key) {
            m.op = None;
            m.pipeline = None;
        }
    }

    pub(super) fn on_probe(&mut self, report: ProbeReport) {
        let Some(snapshot) = self
            .containers
            .iter()
            .find(|c| c.id == report.container_id)
            .cloned()
        else {
            return;
        };
        let Some(state) = self.probes.get_mut(&report.container_id) else {
            return;
        };
        match report.kind {
            ProbeKind::Liveness => state.liveness_failed = !report.success,
            ProbeKind::Readiness => state.ready = report.success,
            ProbeKind::Startup => {
                state.started = report.success;
                state.liveness_failed |= !report.success;
            }
        }
        if !report.success
            && let Some(pod) = self.pods.get(&snapshot.identity.pod_uid)
        {
            let spec = pod.spec.clone();
            self.event(
                &spec,
                Some(&snapshot.identity.container_name),
                EventType::Warning,
                "Unhealthy",
                format!("{} probe failed: {}", report.kind.name(), report.message),
            );
        }
    }
}
