//! The pod controller's status half: a device's status reports become pod status
//! patches (only for pods of its own desired set, only when something changed), its
//! pod events become Kubernetes Events.

use edge_protocol::{DeviceId, PodEventReport, PodPhase, PodStatusReport};
use k8s_openapi::api::core::v1::PodStatus;

use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::{Now, Revocation};
use super::state::FleetState;
use crate::device_sync::{ReportedPod, SyncInput};
use crate::hostile_input::{RejectReason, Rejection};
use crate::kube_writer::{EventPod, EventReason, KubeOp};
use crate::status_mapping::{kube_pod_status, time_from_millis};

impl FleetState {
    pub(super) fn on_status(
        &mut self,
        device: &DeviceId,
        report: PodStatusReport,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) {
        let kube_now = now.kube();
        let Some((entry, pods)) = self.sender(device, revocation, now, out) else {
            return;
        };
        entry.last_seen = Some(now.at);
        // Read by the fault-injection tests (hil-tests/tests/fault_injection.rs).
        tracing::debug!(target: "edge_gateway::fleet", %device, sequence = report.sequence, full = report.full, "status report received");
        if let Some(last) = entry.last_status_sequence {
            if !report.full && report.sequence <= last && last - report.sequence < 1_000_000 {
                return; // duplicate or reordered delivery of an older report
            }
        }
        entry.last_status_sequence = Some(report.sequence);
        let host_ip = entry.host_ip();
        let mut spoofed = Vec::new();
        for reported in &report.pods {
            // isolation: only pods in this device's desired set
            if !entry.sync.has_pod(&reported.uid) {
                continue;
            }
            let Some(pod_entry) = pods.by_uid.get_mut(&reported.uid) else {
                entry.reported_before_pods = true;
                continue;
            };
            if &pod_entry.device != device {
                spoofed.push(reported.uid.clone());
                continue;
            }
            if reported.removed {
                continue;
            }
            let status = kube_pod_status(&pod_entry.pod, reported, host_ip.as_deref(), &kube_now);
            // Skip only when both what we last wrote and what the API holds now already
            // say this (the node lifecycle controller, for one, sets Ready to False while
            // a node is unreachable: the device's status must win).
            let new = strip_times(&status);
            let api_now = pod_entry.pod.status.as_ref().map(strip_times);
            if pod_entry.last_patched.as_ref().map(strip_times).as_ref() == Some(&new)
                && api_now.as_ref() == Some(&new)
            {
                continue;
            }
            pod_entry.set_phase(status.phase.clone(), out);
            if reported.phase == PodPhase::Running {
                if let Some(t) = pod_entry.desired_at.take() {
                    out.push(FleetEffect::Metric(MetricUpdate::DesiredToRunning(
                        now.at.duration_since(t),
                    )));
                }
            }
            pod_entry.last_patched = Some(status.clone());
            pod_entry.failure = None;
            let (namespace, name) = pod_entry.key();
            out.push(FleetEffect::Kube(KubeOp::PatchPodStatus {
                device: device.clone(),
                namespace,
                name,
                uid: reported.uid.clone(),
                status: Box::new(status),
            }));
        }
        let effects = entry.sync.handle(SyncInput::StatusReport {
            observed_generation: report.observed_generation,
            full: report.full,
            pods: report
                .pods
                .iter()
                .map(|p| ReportedPod {
                    uid: p.uid.clone(),
                    removed: p.removed,
                })
                .collect(),
        });
        self.apply_sync(device, effects, false, now, out);
        for uid in spoofed {
            out.push(FleetEffect::Reject(Rejection::new(
                device.as_str(),
                RejectReason::Spoofed,
                format!("status for pod {uid} of another node"),
            )));
        }
        self.evaluate(device, now, out);
    }

    pub(super) fn on_events(
        &mut self,
        device: &DeviceId,
        report: &PodEventReport,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) {
        let Some((entry, _)) = self.sender(device, revocation, now, out) else {
            return;
        };
        for e in &report.events {
            let Some(spec) = entry.sync.pod(&e.pod_uid) else {
                continue;
            };
            let container = e.container.as_deref();
            let in_containers = container.filter(|c| spec.containers.iter().any(|s| s.name == *c));
            let in_ephemeral = container.filter(|c| spec.ephemeral_container(c).is_some());
            let in_init = container.filter(|c| spec.init_containers.iter().any(|s| s.name == *c));
            let reason = EventReason::Reported(e.reason.chars().take(128).collect());
            let message: String = e.message.chars().take(1024).collect();
            let at = if e.timestamp > 0 {
                time_from_millis(e.timestamp)
            } else {
                now.kube()
            };
            let event = EventPod {
                node: device.as_str(),
                namespace: &spec.namespace,
                name: &spec.name,
                uid: &spec.uid,
            }
            .event(e.event_type, reason, &message, at)
            .container(in_containers)
            .count(i32::try_from(e.count).unwrap_or(i32::MAX));
            let event = match (in_ephemeral, in_init) {
                (Some(c), _) => event.ephemeral_container(c),
                (None, Some(c)) => event.init_container(c),
                (None, None) => event,
            };
            out.push(FleetEffect::Kube(KubeOp::RecordEvent {
                device: device.clone(),
                event: Box::new(event.build()),
            }));
        }
    }
}

/// Compares statuses without the times that change on every computation.
fn strip_times(s: &PodStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
                o.remove("lastProbeTime");
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("startTime");
    }
    v
}
