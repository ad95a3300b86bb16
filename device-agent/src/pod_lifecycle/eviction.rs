//! Pods the node ends, the kubelet's way: evicted under node pressure (a Warning Event
//! `Evicted` with the eviction message, containers stopped at once with the hard
//! eviction grace period of one second) or past their `activeDeadlineSeconds` (see
//! `active_deadline.rs`). Their containers are kept for `kubectl logs` and never
//! started again, their directory (emptyDir volumes) is removed once they stopped, and
//! the pod is reported `Failed` with the reason and message.

use std::time::Duration;

use edge_protocol::{EventType, UnixMillis};

use super::PodLifecycle;
use super::container_memory::NodeEnding;
use crate::container_runtime::{ContainerSnapshot, RunState};

/// How long the eviction manager waits for an evicted pod's resources to be reclaimed
/// before it may evict another (the kubelet's `podCleanupTimeout`).
pub const EVICTION_CLEANUP_TIMEOUT_MS: UnixMillis = 30_000;

/// The grace period of a hard eviction (the kubelet's `immediateEvictionGracePeriodSeconds`).
pub(super) const EVICTION_GRACE: Duration = Duration::from_secs(1);

const EVICTED: &str = "Evicted";

impl PodLifecycle {
    /// Marks a desired, not yet ended pod evicted; anything else is ignored.
    pub(super) fn on_evict(&mut self, uid: &str, message: String) {
        self.end_pod(uid, EVICTED, message, EVICTION_GRACE, EventType::Warning);
    }

    /// Ends a desired pod that is neither ended nor being deleted; an Event with the
    /// reason and message says so.
    pub(super) fn end_pod(
        &mut self,
        uid: &str,
        reason: &'static str,
        message: String,
        grace: Duration,
        event_type: EventType,
    ) {
        let now = self.now;
        let Some(pod) = self.pods.get_mut(uid) else {
            return;
        };
        if pod.ended.is_some() || pod.spec.is_terminating() {
            return;
        }
        pod.ended = Some(NodeEnding {
            reason,
            message: message.clone(),
            at: now,
            grace,
            cleaned: false,
        });
        let spec = pod.spec.clone();
        self.event(&spec, None, event_type, reason, message);
    }

    /// Stops the running containers of an ended pod, then removes its directory.
    pub(super) fn stop_ended(&mut self, uid: &str) {
        let running: Vec<ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| c.identity.pod_uid == uid && matches!(c.state, RunState::Running { .. }))
            .cloned()
            .collect();
        let Some((spec, grace)) = self
            .pods
            .get(uid)
            .and_then(|p| Some((p.spec.clone(), p.ended.as_ref()?.grace)))
        else {
            return;
        };
        for c in &running {
            if self.stopping.insert(c.id.clone()) {
                self.event(
                    &spec,
                    Some(&c.identity.container_name),
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", c.identity.container_name),
                );
                self.stop_container(c, grace);
            }
        }
        let Some(pod) = self.pods.get_mut(uid) else {
            return;
        };
        let busy = pod.containers.values().any(|m| m.op.is_some())
            || pod.volumes == super::VolumeState::InFlight;
        if let Some(ended) = pod.ended.as_mut()
            && running.is_empty()
            && !busy
            && !ended.cleaned
        {
            ended.cleaned = true;
            self.effects.push(super::Effect::CleanupPod {
                pod_uid: uid.to_owned(),
            });
        }
    }

    /// Whether the pod was evicted (the eviction manager does not choose it again).
    pub fn is_evicted(&self, uid: &str) -> bool {
        self.pods
            .get(uid)
            .and_then(|p| p.ended.as_ref())
            .is_some_and(|e| e.reason == EVICTED)
    }

    /// An evicted pod whose containers have not stopped and whose directory is not
    /// removed yet (for at most [`EVICTION_CLEANUP_TIMEOUT_MS`]): the eviction manager
    /// waits for it before evicting another, as the kubelet does.
    pub fn eviction_in_progress(&self) -> bool {
        self.pods
            .values()
            .filter_map(|p| p.ended.as_ref())
            .any(|e| {
                e.reason == EVICTED
                    && !e.cleaned
                    && self.now.saturating_sub(e.at) < EVICTION_CLEANUP_TIMEOUT_MS
            })
    }

    /// The pods the eviction manager may choose: desired, not terminating, not ended,
    /// with a running container.
    pub fn evictable_pods(&self) -> Vec<&edge_protocol::PodSpec> {
        self.pods
            .values()
            .filter(|p| p.ended.is_none() && !p.spec.is_terminating())
            .filter(|p| {
                self.containers.iter().any(|c| {
                    c.identity.pod_uid == p.spec.uid && matches!(c.state, RunState::Running { .. })
                })
            })
            .map(|p| p.spec.as_ref())
            .collect()
    }
}
