//! The lease controller and the node status half of the node controller: whether a
//! device is online (heard from within `--device-timeout`, not saying it is offline),
//! when its Lease is renewed and its Node's status written, and the periodic tick.

use edge_protocol::{DeviceId, DeviceState, EventType};
use k8s_openapi::api::core::v1::Pod;
use tracing::info;

use super::Outgoing;
use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::{Now, Revocation};
use super::state::FleetState;
use crate::device_sync::SyncInput;
use crate::kube_writer::node_status;
use crate::kube_writer::{EventPod, EventReason, KubeOp};

impl FleetState {
    /// Re-evaluates one device's liveness and whether its lease or node status is due.
    pub(super) fn evaluate(&mut self, device: &DeviceId, now: Now, out: &mut Effects) {
        let Some(entry) = self.devices.get_mut(device) else {
            return;
        };
        let settings = &self.settings;
        let mut effects = Vec::new();
        let mut went_offline = false;
        let mut came_online = false;
        let mut resync = false;
        let fresh = entry
            .last_seen
            .is_some_and(|t| now.at.saturating_duration_since(t) < settings.device_timeout);
        let online = fresh && entry.state_online != Some(false) && entry.report.is_some();
        if online != entry.online {
            entry.online = online;
            if online {
                info!(%device, "device online");
                entry.offline_since = None;
                entry.ready_since = Some(now.kube());
                entry.node_dirty = true;
                out.push(FleetEffect::Metric(MetricUpdate::DeviceOnline));
                effects = entry.sync.handle(SyncInput::Online);
                // learn what the device runs now (it may have changed while it or the
                // gateway was away, and the node lifecycle controller marks pods not
                // ready meanwhile) so pod status is current again
                entry.status_resyncs += 1;
                resync = true;
                came_online = true;
            } else {
                info!(%device, "device offline: its lease is no longer renewed");
                entry.offline_since = entry.last_seen.map(|seen| {
                    let ago = now.at.saturating_duration_since(seen);
                    now.wall
                        .checked_sub(jiff::SignedDuration::try_from(ago).unwrap_or_default())
                        .unwrap_or(now.wall)
                });
                out.push(FleetEffect::Metric(MetricUpdate::DeviceOffline));
                effects = entry.sync.handle(SyncInput::Offline);
                went_offline = true;
            }
        }
        if entry.online && entry.report.is_some() {
            let at = now.at;
            let upsert =
                !entry.node_registered && !entry.node_pending && entry.claim.may_upsert(at);
            let status_due = entry.node_registered
                && (entry.node_dirty
                    || entry.last_node_status.is_none_or(|t| {
                        at.saturating_duration_since(t) >= settings.node_status_interval
                    }));
            let lease_due = entry.node_registered
                && entry
                    .last_lease
                    .is_none_or(|t| at.saturating_duration_since(t) >= settings.lease_renew);
            if let Some(report) = entry
                .report
                .as_ref()
                .filter(|_| upsert || status_due)
                .cloned()
            {
                let kube_now = now.kube();
                let ready_since = entry
                    .ready_since
                    .clone()
                    .unwrap_or_else(|| kube_now.clone());
                let status = Box::new(node_status(
                    &report,
                    &settings.node,
                    kube_now.clone(),
                    ready_since,
                ));
                entry.node_dirty = false;
                entry.last_node_status = Some(at);
                out.push(FleetEffect::Kube(if upsert {
                    entry.node_pending = true;
                    KubeOp::UpsertNode {
                        device: device.clone(),
                        report: Box::new(report),
                        // kept until the Node is registered: a failed attempt is
                        // retried with them
                        previous_labels: entry.applied_labels.clone(),
                        status,
                        now: kube_now,
                    }
                } else {
                    KubeOp::PatchNodeStatus {
                        device: device.clone(),
                        status,
                    }
                }));
            }
            if lease_due {
                entry.last_lease = Some(at);
                out.push(FleetEffect::Kube(KubeOp::RenewLease {
                    device: device.clone(),
                    node_uid: entry.node_uid.clone(),
                    duration_seconds: i32::try_from(settings.device_timeout.as_secs().max(1))
                        .unwrap_or(40),
                }));
            }
        }
        self.apply_sync(device, effects, false, now, out);
        if came_online {
            self.tell_evicted_while_offline(device, now, out);
        }
        if went_offline {
            // end the kubelet API's streams (follow included) and tell the device to
            // stop them: it gets the cancels from its session when it is back
            out.push(FleetEffect::EndLogStreams {
                device: device.clone(),
                tell_device: true,
            });
            Self::end_streams(device, format!("node {device} went offline"), out);
        }
        if resync {
            out.push(FleetEffect::Mqtt(Outgoing::StatusResync {
                device: device.clone(),
                reason: "gateway start".to_owned(),
            }));
        }
    }

    /// `up/state`: the agent's own word on whether it is online (its MQTT last will
    /// says offline). A retained online state is stale: it does not count as heard.
    pub(super) fn on_state(
        &mut self,
        device: &DeviceId,
        state: &DeviceState,
        retained: bool,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) {
        if !self.devices.contains_key(device) && !state.online {
            // an unknown device that says it is offline is not asked anything
            return;
        }
        let Some((entry, _)) = self.sender(device, revocation, now, out) else {
            return;
        };
        entry.state_online = Some(state.online);
        if state.online && !retained {
            entry.last_seen = Some(now.at);
        }
        self.evaluate(device, now, out);
    }

    /// Periodic pass over every device: devices revoked since; desired sets held back
    /// by a failing store; liveness, leases, node status.
    pub(super) fn tick(&mut self, revoked: &[DeviceId], now: Now, out: &mut Effects) {
        let devices: Vec<DeviceId> = self.devices.keys().cloned().collect();
        for device in revoked {
            self.retire(device, now, out);
        }
        self.retry_retirements(now, out);
        self.retry_held_back_sets(now, out);
        // (evaluating a device retired above finds no entry and does nothing)
        for device in &devices {
            self.evaluate(device, now, out);
        }
    }
}

/// Whether Kubernetes' taint eviction deleted the pod (its NoExecute toleration of an
/// unreachable or not-ready node ran out).
fn evicted_by_taint(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions.iter().any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.status == "True"
                        && c.reason.as_deref() == Some("DeletionByTaintManager")
                })
            })
}

impl FleetState {
    /// A device back online whose pods Kubernetes evicted meanwhile: an Event on each
    /// says why the device now stops them (they are no longer in its desired set).
    fn tell_evicted_while_offline(&self, device: &DeviceId, now: Now, out: &mut Effects) {
        let at = now.kube();
        for (uid, entry) in self.pods.on_device(device) {
            if !evicted_by_taint(&entry.pod) {
                continue;
            }
            let (namespace, name) = entry.key();
            let message = format!(
                "Kubernetes evicted this pod while node {device} was offline longer than the \
                 pod tolerates (its autonomy budget); the device is back and stops its \
                 containers now"
            );
            let about = EventPod {
                node: device.as_str(),
                namespace: &namespace,
                name: &name,
                uid,
            };
            out.push(FleetEffect::Kube(KubeOp::RecordEvent {
                device: device.clone(),
                event: Box::new(
                    about
                        .event(
                            EventType::Normal,
                            EventReason::EvictedWhileOffline,
                            &message,
                            at.clone(),
                        )
                        .build(),
                ),
            }));
        }
    }
}
