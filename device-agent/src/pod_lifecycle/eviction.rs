//! Pods evicted under node pressure, the kubelet's way: a Warning Event `Evicted` with
//! the eviction message, the containers stopped at once (the hard eviction grace period
//! of one second) and kept for `kubectl logs`, never started again, its directory
//! (emptyDir volumes) removed once they stopped, and the pod reported `Failed` with
//! reason `Evicted`.

use std::time::Duration;

use edge_protocol::{EventType, UnixMillis};

use super::PodLifecycle;
use crate::container_runtime::{ContainerSnapshot, RunState};

/// How long the eviction manager waits for an evicted pod's resources to be reclaimed
/// before it may evict another (the kubelet's `podCleanupTimeout`).
pub const EVICTION_CLEANUP_TIMEOUT_MS: UnixMillis = 30_000;

/// The grace period of a hard eviction (the kubelet's `immediateEvictionGracePeriodSeconds`).
pub(super) const EVICTION_GRACE: Duration = Duration::from_secs(1);

impl PodLifecycle {
    /// Marks a desired, not yet evicted pod evicted; anything else is ignored.
    pub(super) fn on_evict(&mut self, uid: &str, message: String) {
        let Some(pod) = self.pods.get_mut(uid) else {
            return;
        };
        if pod.evicted.is_some() || pod.spec.is_terminating() {
            return;
        }
        pod.evicted = Some(message.clone());
        pod.evicted_at = self.now;
        let spec = pod.spec.clone();
        self.event(&spec, None, EventType::Warning, "Evicted", message);
    }

    /// Stops the running containers of an evicted pod, then removes its directory.
    pub(super) fn stop_evicted(&mut self, uid: &str) {
        let running: Vec<ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| c.identity.pod_uid == uid && matches!(c.state, RunState::Running { .. }))
            .cloned()
            .collect();
        let Some(spec) = self.pods.get(uid).map(|p| p.spec.clone()) else {
            return;
        };
        for c in running {
            if self.stopping.insert(c.id.clone()) {
                self.event(
                    &spec,
                    Some(&c.identity.container_name),
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", c.identity.container_name),
                );
                self.effects.push(super::Effect::Stop {
                    id: c.id.clone(),
                    grace: EVICTION_GRACE,
                });
            }
        }
        let Some(pod) = self.pods.get_mut(uid) else {
            return;
        };
        let busy = pod.containers.values().any(|m| m.op.is_some())
            || pod.volumes == super::VolumeState::InFlight;
        let running = self
            .containers
            .iter()
            .any(|c| c.identity.pod_uid == uid && matches!(c.state, RunState::Running { .. }));
        if !running && !busy && !pod.evicted_cleaned {
            pod.evicted_cleaned = true;
            self.effects.push(super::Effect::CleanupPod {
                pod_uid: uid.to_owned(),
            });
        }
    }

    /// Whether the pod was evicted (the eviction manager does not choose it again).
    pub fn is_evicted(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.evicted.is_some())
    }
}

impl PodLifecycle {
    /// An evicted pod whose containers have not stopped and whose directory is not
    /// removed yet (for at most [`EVICTION_CLEANUP_TIMEOUT_MS`]): the eviction manager
    /// waits for it before evicting another, as the kubelet does.
    pub fn eviction_in_progress(&self) -> bool {
        self.pods.values().any(|p| {
            p.evicted.is_some()
                && !p.evicted_cleaned
                && self.now.saturating_sub(p.evicted_at) < EVICTION_CLEANUP_TIMEOUT_MS
        })
    }

    /// The pods the eviction manager may choose: desired, not terminating, not
    /// evicted, with a running container.
    pub fn evictable_pods(&self) -> Vec<&edge_protocol::PodSpec> {
        self.pods
            .values()
            .filter(|p| p.evicted.is_none() && !p.spec.is_terminating())
            .filter(|p| {
                self.containers.iter().any(|c| {
                    c.identity.pod_uid == p.spec.uid && matches!(c.state, RunState::Running { .. })
                })
            })
            .map(|p| p.spec.as_ref())
            .collect()
    }
}
