//! The node controller's registration half: a device's hello (admission, its report
//! checked, the Node claimed) and what the Kubernetes writers report back about its
//! Node (registered, refused as not ours, failed).

use edge_protocol::{DeviceId, NodeReport};
use tracing::info;

use super::admission::admitted;
use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::{Now, Revocation};
use super::node_claim::{NodeClaim, REFUSAL_RECHECK};
use super::state::{DeviceEntry, FleetState};
use crate::device_sync::{DeviceSync, SyncInput};
use crate::hostile_input::{RejectReason, Rejection};
use crate::kube_writer::KubeFeedback;

impl FleetState {
    pub(super) fn on_hello(
        &mut self,
        device: &DeviceId,
        report: NodeReport,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) {
        let reject = |reason, detail: String| {
            FleetEffect::Reject(Rejection::new(device.as_str(), reason, detail))
        };
        if let Err(why) = admitted(&self.settings, device, revocation) {
            return out.push(reject(RejectReason::NotAdmitted, why.to_string()));
        }
        let report = match crate::node_resources::checked_report(report) {
            Ok((report, dropped)) => {
                for d in dropped {
                    out.push(reject(
                        RejectReason::BadResource,
                        format!("extended resource {:?} left out: {}", d.name, d.why),
                    ));
                }
                report
            }
            Err(e) => return out.push(reject(RejectReason::BadCapacity, e.to_string())),
        };
        let mut is_new = false;
        let entry = self.devices.entry(device.clone()).or_insert_with(|| {
            is_new = true;
            DeviceEntry::new(
                DeviceSync::new(device.clone()),
                None,
                NodeClaim::Unconfirmed,
            )
        });
        if !entry.claim.may_upsert(now.at) {
            return out.push(reject(
                RejectReason::NodeNotOwned,
                "a Node with this device's name exists and is not managed by edge-gateway"
                    .to_owned(),
            ));
        }
        if let NodeClaim::Refused { .. } = entry.claim {
            entry.claim = NodeClaim::Unconfirmed;
        }
        // A report that changed within the agent's session (pressure, images, protocol
        // 1.2): the Node's status is written again; the session, its streams and its
        // report sequence go on.
        if report.update
            && entry.node_registered
            && entry
                .report
                .as_ref()
                .is_some_and(|old| old.labels == report.labels)
        {
            entry.report = Some(report.clone());
            entry.last_seen = Some(now.at);
            entry.node_dirty = true;
            out.push(FleetEffect::StoreReport {
                device: device.clone(),
                report: Box::new(report),
            });
            self.evaluate(device, now, out);
            return;
        }
        if let Some(old) = entry.report.replace(report.clone()) {
            entry
                .applied_labels
                .get_or_insert_with(|| crate::node_object::node_labels(device, &old).0);
        }
        entry.last_seen = Some(now.at);
        // a hello starts a new agent session: the old session's streams are gone
        Self::end_streams(
            device,
            format!("the edge-agent on node {device} restarted"),
            out,
        );
        // a hello starts a new agent session: accept its report sequence afresh
        entry.last_status_sequence = None;
        entry.node_dirty = true;
        entry.node_registered = false;
        out.push(FleetEffect::Metric(MetricUpdate::DevicesTotal(
            self.devices.len(),
        )));
        out.push(FleetEffect::StoreReport {
            device: device.clone(),
            report: Box::new(report),
        });
        if is_new {
            // its pods are adopted once its Node is confirmed as ours
            info!(%device, "new device");
        }
        self.evaluate(device, now, out);
    }

    /// Results of Kubernetes writes.
    pub(super) fn on_feedback(&mut self, feedback: KubeFeedback, now: Now, out: &mut Effects) {
        match feedback {
            KubeFeedback::NodeRegistered { device, uid } => {
                if let Some(e) = self.devices.get_mut(&device) {
                    e.node_registered = true;
                    e.node_pending = false;
                    e.node_uid = uid.or(e.node_uid.take());
                    e.last_lease = None;
                    e.claim = NodeClaim::Owned;
                    e.applied_labels = None;
                    if !std::mem::replace(&mut e.adopted, true) {
                        out.push(FleetEffect::AdoptPods(device.clone()));
                    }
                }
                self.evaluate(&device, now, out);
            }
            KubeFeedback::NodeRefused { device, why } => {
                let Some(e) = self.devices.get_mut(&device) else {
                    return;
                };
                e.node_registered = false;
                e.node_pending = false;
                e.claim = NodeClaim::Refused {
                    recheck_at: now.at + REFUSAL_RECHECK,
                };
                e.adopted = false;
                // a restored device whose name now belongs to another Node: nothing it
                // had is delivered any more
                e.sync = DeviceSync::new(device.clone());
                self.pods.remove_device(&device, out);
                out.push(FleetEffect::ForgetStored {
                    device: device.clone(),
                    retired: false,
                });
                out.push(FleetEffect::Reject(Rejection::new(
                    device.as_str(),
                    RejectReason::NodeNotOwned,
                    why,
                )));
            }
            KubeFeedback::NodeFailed { device } => {
                if let Some(e) = self.devices.get_mut(&device) {
                    e.node_registered = false;
                    e.node_pending = false;
                }
            }
            KubeFeedback::NodeRetired { device } => self.on_retire_result(device, true, now),
            KubeFeedback::RetireFailed { device } => self.on_retire_result(device, false, now),
            KubeFeedback::DeleteFailed { device, uid } => {
                if let Some(e) = self.devices.get_mut(&device) {
                    let effects = e.sync.handle(SyncInput::DeleteFailed { uid });
                    self.apply_sync(&device, effects, false, now, out);
                }
            }
        }
    }
}
