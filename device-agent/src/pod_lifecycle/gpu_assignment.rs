//! `nvidia.com/gpu` devices given to containers the way the kubelet's device manager
//! hands out a device plugin's devices: at admission each container whose limits name
//! the resource gets that many distinct device ids (devices of run-to-completion init
//! containers are given again to later containers of the same pod), a pod asking for
//! more than are free is refused (`UnexpectedAdmissionError`), and a pod's devices are
//! free again once it is gone or done. The assignment lives in the containers' labels
//! ([`crate::container_labels::GPU_DEVICES`]), so a restarted agent takes it back from
//! the listing instead of a file of its own.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use edge_protocol::{ContainerSpec, EventType, PodPhase, PodSpec};

use super::PodLifecycle;
use super::inputs_effects::ContainerKey;
use crate::container_runtime::RunState;

/// The extended resource the agent assigns devices for.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The kubelet's pod status reason when its device manager cannot allocate.
pub const ADMISSION_ERROR_REASON: &str = "UnexpectedAdmissionError";

/// Why the devices a container asks for cannot be given (the device manager's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuAllocationError {
    #[error(
        "requested number of devices unavailable for {GPU_RESOURCE}. Requested: {requested}, Available: {available}"
    )]
    Unavailable { requested: u64, available: u64 },
    /// The node has no such devices at all.
    #[error("cannot allocate unregistered device {GPU_RESOURCE}")]
    Unregistered,
}

/// One container's request, in the order the kubelet allocates: init containers first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    pub container: String,
    pub count: u64,
    /// An init container that runs to completion before the next starts: its devices
    /// may be given again to the containers after it.
    pub run_to_completion: bool,
}

/// The node's GPUs and which container holds which.
#[derive(Debug, Clone, Default)]
pub struct GpuPool {
    devices: Vec<String>,
    assigned: BTreeMap<ContainerKey, Vec<String>>,
}

impl GpuPool {
    pub fn new(devices: Vec<String>) -> Self {
        Self {
            devices,
            assigned: BTreeMap::new(),
        }
    }

    /// The devices given to a container (empty: none).
    pub fn assigned(&self, key: &ContainerKey) -> &[String] {
        self.assigned.get(key).map_or(&[], Vec::as_slice)
    }

    /// The devices no container holds, in the node's order.
    pub fn free(&self) -> Vec<String> {
        let used: BTreeSet<&String> = self.assigned.values().flatten().collect();
        self.devices
            .iter()
            .filter(|d| !used.contains(d))
            .cloned()
            .collect()
    }

    /// Takes back the devices a listed container's labels name (after an agent
    /// restart). Devices the node does not have are dropped; a container already
    /// holding devices keeps them.
    pub fn adopt(&mut self, key: ContainerKey, ids: &[String]) {
        if self.assigned.contains_key(&key) {
            return;
        }
        let known: Vec<String> = ids
            .iter()
            .filter(|id| self.devices.contains(id))
            .cloned()
            .collect();
        if !known.is_empty() {
            self.assigned.insert(key, known);
        }
    }

    /// Gives each request of pod `uid` without devices yet that many; all or nothing.
    pub fn admit(&mut self, uid: &str, requests: &[GpuRequest]) -> Result<(), GpuAllocationError> {
        let key = |name: &str| (uid.to_owned(), name.to_owned());
        let mut free = self.free();
        // Devices of the pod's finished-before-the-next init containers, given again.
        let mut reusable: Vec<String> = requests
            .iter()
            .filter(|r| r.run_to_completion)
            .flat_map(|r| self.assigned(&key(&r.container)).to_vec())
            .collect();
        let mut added = Vec::new();
        for r in requests.iter().filter(|r| r.count > 0) {
            let k = key(&r.container);
            if self.assigned.contains_key(&k) {
                continue;
            }
            let available = (reusable.len() + free.len()) as u64;
            if r.count > available {
                for k in added {
                    self.assigned.remove(&k);
                }
                return Err(if self.devices.is_empty() {
                    GpuAllocationError::Unregistered
                } else {
                    GpuAllocationError::Unavailable {
                        requested: r.count,
                        available,
                    }
                });
            }
            let mut taken = Vec::new();
            while (taken.len() as u64) < r.count {
                let next = if reusable.is_empty() {
                    free.remove(0)
                } else {
                    reusable.remove(0)
                };
                taken.push(next);
            }
            if r.run_to_completion {
                reusable.extend(taken.iter().cloned());
            }
            self.assigned.insert(k.clone(), taken);
            added.push(k);
        }
        Ok(())
    }

    /// Frees the devices of every pod `keep` says no to.
    pub fn retain_pods(&mut self, keep: impl Fn(&str) -> bool) {
        self.assigned.retain(|(uid, _), _| keep(uid));
    }
}

/// How many GPUs a container's limits ask for.
pub fn gpu_count(c: &ContainerSpec) -> u64 {
    c.resources.extended.get(GPU_RESOURCE).copied().unwrap_or(0)
}

/// A pod's GPU requests in allocation order (init containers, then containers).
pub fn gpu_requests(spec: &PodSpec) -> Vec<GpuRequest> {
    let init = spec.init_containers.iter().map(|c| GpuRequest {
        container: c.name.clone(),
        count: gpu_count(c),
        run_to_completion: !c.is_sidecar(),
    });
    let main = spec.containers.iter().map(|c| GpuRequest {
        container: c.name.clone(),
        count: gpu_count(c),
        run_to_completion: false,
    });
    init.chain(main).filter(|r| r.count > 0).collect()
}

impl PodLifecycle {
    /// The `nvidia.com/gpu` device ids of the node, given to containers that ask.
    pub fn with_gpus(mut self, devices: Vec<String>) -> Self {
        self.gpus = GpuPool::new(devices);
        self
    }

    /// The devices assigned to a container (for its create).
    pub(super) fn gpus_of(&self, key: &ContainerKey) -> Vec<String> {
        self.gpus.assigned(key).to_vec()
    }

    /// Takes back the assignments the listed containers' labels record (newest
    /// instance first).
    pub(super) fn adopt_gpus(&mut self) {
        let mut listed: Vec<(ContainerKey, u32, Vec<String>)> = self
            .containers
            .iter()
            .filter(|c| !c.identity.gpu_devices.is_empty())
            .map(|c| {
                (
                    (
                        c.identity.pod_uid.clone(),
                        c.identity.container_name.clone(),
                    ),
                    c.identity.restart_count,
                    c.identity.gpu_devices.clone(),
                )
            })
            .collect();
        listed.sort_by_key(|(_, restarts, _)| std::cmp::Reverse(*restarts));
        for (key, _, ids) in listed {
            self.gpus.adopt(key, &ids);
        }
    }

    /// Frees the devices of pods that no longer hold them: gone from the desired set,
    /// ended by the node or done, once none of their containers runs.
    pub(super) fn release_gpus(&mut self) {
        let running: HashSet<&str> = self
            .containers
            .iter()
            .filter(|c| matches!(c.state, RunState::Running { .. }))
            .map(|c| c.identity.pod_uid.as_str())
            .collect();
        let active: HashSet<&str> = self
            .pods
            .values()
            .filter(|p| p.ended.is_none())
            .filter(|p| {
                !matches!(
                    self.pod_status(p).phase,
                    PodPhase::Succeeded | PodPhase::Failed
                )
            })
            .map(|p| p.spec.uid.as_str())
            .collect();
        let holding: HashSet<String> = running
            .union(&active)
            .map(|uid| (*uid).to_owned())
            .collect();
        self.gpus.retain_pods(|uid| holding.contains(uid));
    }

    /// Admits pod `uid`'s GPU requests; a pod asking for more than are free is ended
    /// as the kubelet rejects it (`Failed`, `UnexpectedAdmissionError`, a Warning
    /// Event). `false`: the pod was refused.
    pub(super) fn admit_gpus(&mut self, uid: &str) -> bool {
        let Some(pod) = self.pods.get(uid) else {
            return false;
        };
        let requests = gpu_requests(&pod.spec);
        // A pod that is done starts nothing again (and holds no devices).
        if requests.is_empty()
            || matches!(
                self.pod_status(pod).phase,
                PodPhase::Succeeded | PodPhase::Failed
            )
        {
            return true;
        }
        let grace = Duration::from_secs(pod.spec.termination_grace_period_seconds);
        match self.gpus.admit(uid, &requests) {
            Ok(()) => true,
            Err(e) => {
                self.end_pod(
                    uid,
                    ADMISSION_ERROR_REASON,
                    format!("Allocate failed due to {e}, which is unexpected"),
                    grace,
                    EventType::Warning,
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
