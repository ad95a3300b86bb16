//! `activeDeadlineSeconds`: a pod active on the device longer than that (counted from
//! when the device took it, its `startTime`) is ended as the kubelet ends it: phase
//! `Failed`, reason `DeadlineExceeded`, an Event, its containers stopped with the pod's
//! grace period and not restarted.

use std::time::Duration;

use edge_protocol::EventType;

use super::PodLifecycle;

const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

impl PodLifecycle {
    /// Ends the pod when its deadline passed (not one being deleted or already ended).
    pub(super) fn past_active_deadline(&mut self, uid: &str) {
        let Some(pod) = self.pods.get(uid) else {
            return;
        };
        let Some(deadline) = pod.spec.active_deadline_seconds else {
            return;
        };
        if pod.ended.is_some() || pod.spec.is_terminating() || pod.accepted_at == 0 {
            return;
        }
        let active_ms = self.now.saturating_sub(pod.accepted_at);
        if active_ms < deadline.saturating_mul(1000) {
            return;
        }
        let grace = Duration::from_secs(pod.spec.termination_grace_period_seconds);
        self.end_pod(
            uid,
            "DeadlineExceeded",
            MESSAGE.to_owned(),
            grace,
            EventType::Normal,
        );
    }
}
