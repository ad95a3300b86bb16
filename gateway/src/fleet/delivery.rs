//! The pod controller's delivery half: a device's desired set follows its pods in
//! Kubernetes ([`crate::device_sync`] decides; this turns its effects into the fleet's),
//! pods that cannot be delivered are refused, sets a failing store held back are
//! retried, and sets not acknowledged are sent again after the broker lost our session.

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::Pod;
use tracing::warn;

use super::Outgoing;
use super::effect::{Effects, FleetEffect};
use super::input::{Now, Revocation};
use super::state::{FleetState, PodBook};
use crate::device_sync::{SyncEffect, SyncInput};
use crate::kube_writer::{EventPod, EventReason, KubeOp};
use crate::status_mapping::config_error_status;
use crate::translation::{Translation, TranslationError};

impl FleetState {
    /// Turns a device's sync effects into the fleet's, in order: a store write before
    /// the publish that follows it.
    pub(super) fn apply_sync(
        &mut self,
        device: &DeviceId,
        effects: Vec<SyncEffect>,
        retry: bool,
        now: Now,
        out: &mut Effects,
    ) {
        for effect in effects {
            match effect {
                SyncEffect::Persist(record) => out.push(FleetEffect::StoreDesired {
                    device: device.clone(),
                    record,
                    retry,
                }),
                // (the runner drops it while the set is not stored: never promise a
                // device more than the store holds)
                SyncEffect::Publish(set) => out.push(FleetEffect::Mqtt(Outgoing::Desired {
                    device: device.clone(),
                    set,
                })),
                SyncEffect::DeletePod {
                    uid,
                    namespace,
                    name,
                } => out.push(FleetEffect::Kube(KubeOp::DeletePod {
                    device: device.clone(),
                    namespace,
                    name,
                    uid,
                })),
                SyncEffect::Refused {
                    uid,
                    new_pod,
                    size,
                    limit,
                    ..
                } => {
                    let refusal = Refusal {
                        uid,
                        new_pod,
                        size,
                        limit,
                    };
                    refuse_pod(&mut self.pods, device, &refusal, now, out)
                }
            }
        }
    }

    /// A device was heard from with something for its desired-set sync.
    pub(super) fn heard_with(
        &mut self,
        device: &DeviceId,
        input: SyncInput,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) {
        let Some((entry, _)) = self.sender(device, revocation, now, out) else {
            return;
        };
        entry.last_seen = Some(now.at);
        let effects = entry.sync.handle(input);
        self.apply_sync(device, effects, false, now, out);
        self.evaluate(device, now, out);
    }

    /// A pod bound to one of our nodes, with its translation result.
    pub(super) fn on_pod_translated(
        &mut self,
        device: &DeviceId,
        pod: Arc<Pod>,
        result: Result<Translation, TranslationError>,
        now: Now,
        out: &mut Effects,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if uid.is_empty() {
            return;
        }
        let kube_now = now.kube();
        let Some(entry) = self.devices.get_mut(device) else {
            return;
        };
        let host_ip = entry.host_ip();
        let pod_entry = self.pods.upsert(&uid, &pod, device);
        if pod_entry.phase.is_none() {
            let phase = crate::status_mapping::phase_of(&pod).to_owned();
            pod_entry.set_phase(Some(phase), out);
        }
        let about = EventPod {
            node: device.as_str(),
            namespace: &ns,
            name: &name,
            uid: &uid,
        };
        let event = |reason: EventReason, message: &str| {
            FleetEffect::Kube(KubeOp::RecordEvent {
                device: device.clone(),
                event: Box::new(about.warning(reason, message, kube_now.clone()).build()),
            })
        };
        let effects = match result {
            Ok(t) => {
                for w in &t.warnings {
                    out.push(event(w.reason.clone(), &w.message));
                }
                if !entry.sync.has_pod(&uid) && !t.spec.is_terminating() {
                    pod_entry.desired_at = Some(now.at);
                }
                entry.sync.handle(SyncInput::PodUpserted(t.spec))
            }
            Err(_) if pod.metadata.deletion_timestamp.is_some() => {
                match entry.sync.pod(&uid).cloned() {
                    Some(mut spec) => {
                        spec.deletion_grace_period_seconds = Some(
                            pod.metadata
                                .deletion_grace_period_seconds
                                .and_then(|g| u64::try_from(g).ok())
                                .unwrap_or(spec.termination_grace_period_seconds),
                        );
                        entry.sync.handle(SyncInput::PodUpserted(spec))
                    }
                    None => {
                        out.push(FleetEffect::Kube(KubeOp::DeletePod {
                            device: device.clone(),
                            namespace: ns.clone(),
                            name: name.clone(),
                            uid: uid.clone(),
                        }));
                        Vec::new()
                    }
                }
            }
            // a pod the device already runs (e.g. a ConfigMap key it mounts was removed):
            // like a kubelet failing a volume update, it keeps running what it has
            Err(e) if entry.sync.has_pod(&uid) => {
                let message = e.to_string();
                if pod_entry.failure.as_deref() != Some(message.as_str()) {
                    warn!(%device, pod = %format!("{ns}/{name}"), error = %message, "pod update cannot be delivered");
                    pod_entry.failure = Some(message.clone());
                    out.push(event(
                        EventReason::FailedMount,
                        &format!("Pod update not delivered (the device keeps running the previous spec): {message}"),
                    ));
                }
                Vec::new()
            }
            Err(e) => {
                let message = e.to_string();
                if pod_entry.failure.as_deref() != Some(message.as_str()) {
                    warn!(%device, pod = %format!("{ns}/{name}"), error = %message, "pod cannot be run on the device");
                    pod_entry.failure = Some(message.clone());
                    out.push(event(EventReason::Failed, &format!("Error: {message}")));
                    let status = config_error_status(&pod, &message, host_ip.as_deref(), &kube_now);
                    pod_entry.set_phase(Some("Pending".to_owned()), out);
                    pod_entry.last_patched = Some(status.clone());
                    out.push(FleetEffect::Kube(KubeOp::PatchPodStatus {
                        device: device.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                        uid: uid.clone(),
                        status: Box::new(status),
                    }));
                }
                Vec::new()
            }
        };
        self.apply_sync(device, effects, false, now, out);
    }

    /// A pod is gone from Kubernetes.
    pub(super) fn on_pod_deleted(&mut self, uid: &str, now: Now, out: &mut Effects) {
        let Some(pod_entry) = self.pods.remove(uid, out) else {
            return;
        };
        let device = pod_entry.device;
        let effects = match self.devices.get_mut(&device) {
            Some(e) => e.sync.handle(SyncInput::PodRemoved {
                uid: uid.to_owned(),
            }),
            None => Vec::new(),
        };
        self.apply_sync(&device, effects, false, now, out);
    }

    /// The pod watch has a complete view for `device`: `present` are its pods' uids.
    pub(super) fn on_pods_synced(
        &mut self,
        device: &DeviceId,
        present: BTreeSet<String>,
        now: Now,
        out: &mut Effects,
    ) {
        let Some(e) = self.devices.get_mut(device) else {
            return;
        };
        let resync = std::mem::take(&mut e.reported_before_pods);
        out.push(FleetEffect::RetainLogTails {
            device: device.clone(),
            present: present.clone(),
        });
        let effects = e.sync.handle(SyncInput::KubernetesSynced { present });
        self.apply_sync(device, effects, false, now, out);
        if resync {
            // statuses reported before the watch caught up were dropped
            out.push(FleetEffect::Mqtt(Outgoing::StatusResync {
                device: device.clone(),
                reason: "gateway caught up with its pods".to_owned(),
            }));
        }
    }

    /// The broker answered a reconnect without our session: what it had not yet
    /// delivered is gone, so every desired set a device has not acknowledged is sent
    /// again (a device's own resync request may have been lost with the session too).
    pub(super) fn on_broker_session_lost(&mut self, now: Now, out: &mut Effects) {
        let devices: Vec<DeviceId> = self.devices.keys().cloned().collect();
        for device in devices {
            if let Some(entry) = self.devices.get_mut(&device) {
                let effects = entry.sync.handle(SyncInput::BrokerSessionLost);
                self.apply_sync(&device, effects, false, now, out);
            }
        }
    }

    /// Stores (and then sends) the desired sets whose store write failed.
    pub(super) fn retry_held_back_sets(&mut self, now: Now, out: &mut Effects) {
        let failed: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|(_, e)| e.persist_failed)
            .map(|(d, _)| d.clone())
            .collect();
        for device in failed {
            let Some(entry) = self.devices.get_mut(&device) else {
                continue;
            };
            entry.persist_failed = false;
            let effects = entry.sync.handle(SyncInput::StoreRecovered);
            self.apply_sync(&device, effects, true, now, out);
        }
    }
}

/// A pod [`crate::device_sync`] left out of a desired set: it would make the set `size`
/// bytes, over `limit`.
struct Refusal {
    uid: String,
    new_pod: bool,
    size: usize,
    limit: usize,
}

/// A pod that does not fit the device's desired set: a new one is rejected the way the
/// kubelet rejects a pod it cannot admit (phase Failed, a Warning Event); a change of a
/// running one is not delivered (Warning Event; the device keeps the previous spec).
fn refuse_pod(
    pods: &mut PodBook,
    device: &DeviceId,
    refusal: &Refusal,
    now: Now,
    out: &mut Effects,
) {
    let Refusal {
        uid,
        new_pod,
        size,
        limit,
    } = refusal;
    let (uid, new_pod) = (uid.as_str(), *new_pod);
    let Some(pod_entry) = pods.by_uid.get_mut(uid) else {
        return;
    };
    let message = format!(
        "the desired set of node {device} would be {size} bytes with this pod, over the {limit}-byte limit of one MQTT message; \
         run it on another device, or make the ConfigMaps and Secrets it mounts smaller"
    );
    if pod_entry.failure.as_deref() == Some(message.as_str()) {
        return;
    }
    pod_entry.failure = Some(message.clone());
    let (ns, name) = pod_entry.key();
    warn!(%device, pod = %format!("{ns}/{name}"), size, limit, new_pod, "pod does not fit the device's desired set");
    let reason = EventReason::DesiredSetTooLarge;
    let text = if new_pod {
        format!("Pod was rejected: {message}")
    } else {
        format!("Pod update not delivered (the device keeps running the previous spec): {message}")
    };
    out.push(FleetEffect::Kube(KubeOp::RecordEvent {
        device: device.clone(),
        event: Box::new(
            EventPod {
                node: device.as_str(),
                namespace: &ns,
                name: &name,
                uid,
            }
            .warning(reason.clone(), &text, now.kube())
            .build(),
        ),
    }));
    if new_pod {
        let status = crate::status_mapping::rejected_status(&pod_entry.pod, reason.as_str(), &text);
        pod_entry.set_phase(Some("Failed".to_owned()), out);
        pod_entry.last_patched = Some(status.clone());
        out.push(FleetEffect::Kube(KubeOp::PatchPodStatus {
            device: device.clone(),
            namespace: ns,
            name,
            uid: uid.to_owned(),
            status: Box::new(status),
        }));
    }
}
