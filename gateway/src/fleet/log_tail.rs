//! The offline log cache's decisions (the bytes are held by [`crate::log_cache`]): a
//! device's reported tails go in only for containers of pods the fleet knows on that
//! device and that did not opt out; anything else is hostile input, dropped and
//! counted. And what a `kubectl logs` of a pod on an offline device is answered from.

use edge_protocol::{DeviceId, LogTailReport};

use super::effect::{Effects, FleetEffect};
use super::state::FleetState;
use crate::hostile_input::{RejectReason, Rejection};
use crate::log_cache::offline_answer::{OfflinePod, OfflineSince};
use crate::translation::opts_out_of_log_cache;

/// A pod on an offline device, for an answer from the log cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineLogSource {
    pub device: DeviceId,
    pub pod_uid: String,
    pub pod: OfflinePod,
}

impl FleetState {
    pub(super) fn on_log_tail(&self, device: &DeviceId, report: LogTailReport, out: &mut Effects) {
        for tail in report.containers {
            let reason =
                match self.pods.by_uid.get(&tail.pod_uid) {
                    Some(p) if &p.device != device => RejectReason::Spoofed,
                    Some(p)
                        if p.pod.spec.as_ref().is_some_and(|s| {
                            s.containers.iter().any(|c| c.name == tail.container)
                        }) && !opts_out_of_log_cache(&p.pod.metadata) =>
                    {
                        out.push(FleetEffect::CacheLogTail {
                            device: device.clone(),
                            tail: Box::new(tail),
                        });
                        continue;
                    }
                    _ => RejectReason::UnknownPod,
                };
            out.push(FleetEffect::Reject(Rejection::new(
                device.as_str(),
                reason,
                format!(
                    "log tail of container {:?} of pod {} (uid {}) that is not the device's \
                     or opted out of the log cache",
                    tail.container, tail.pod_name, tail.pod_uid
                ),
            )));
        }
    }

    /// The pod a `kubectl logs` is about when its device is offline (`None`: the pod is
    /// unknown, or its device is online).
    pub fn offline_log_source(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Option<OfflineLogSource> {
        let uid = self
            .pods
            .by_name
            .get(&(namespace.to_owned(), name.to_owned()))?;
        let entry = self.pods.by_uid.get(uid)?;
        let device = self.devices.get(&entry.device)?;
        if device.online {
            return None;
        }
        Some(OfflineLogSource {
            device: entry.device.clone(),
            pod_uid: uid.clone(),
            pod: OfflinePod {
                device: entry.device.to_string(),
                since: OfflineSince(device.offline_since),
                pod: format!("{namespace}/{name}"),
                container: container.to_owned(),
                opted_out: opts_out_of_log_cache(&entry.pod.metadata),
            },
        })
    }
}
