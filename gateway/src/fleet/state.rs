//! [`FleetState`]: every device's registry entry, sync state and pods, and
//! [`FleetState::handle`], the one entry point that turns an input into effects. The
//! decisions live in the controllers beside this file; this one holds the data and
//! routes each input to its controller.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use edge_protocol::{DesiredSet, DeviceId, NodeReport};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::admission::admitted;
use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::{FleetInput, Now, Revocation};
use super::introductions::Introductions;
use super::node_claim::NodeClaim;
use super::retirement::Retirements;
use super::{FleetSettings, LogTargetError};
use crate::device_streams::{DeviceReadiness, PodPlacement};
use crate::device_sync::{DeviceSync, PersistedDevice, SyncInput};
use crate::mqtt_link::DeviceMessage;
use crate::node_object::device_internal_ip;
use crate::translation::NodeContext;

/// One device.
#[derive(Debug)]
pub(super) struct DeviceEntry {
    pub sync: DeviceSync,
    pub report: Option<NodeReport>,
    pub state_online: Option<bool>,
    pub last_seen: Option<Instant>,
    pub online: bool,
    /// When the device was last heard from before it went offline (unknown for a device
    /// offline since the gateway started).
    pub offline_since: Option<jiff::Timestamp>,
    pub ready_since: Option<Time>,
    pub node_registered: bool,
    pub node_uid: Option<String>,
    pub node_pending: bool,
    pub last_lease: Option<Instant>,
    pub last_node_status: Option<Instant>,
    pub node_dirty: bool,
    pub last_status_sequence: Option<u64>,
    /// Full status reports asked for (one each time the device comes online).
    pub status_resyncs: u64,
    /// A report named pods of the device's desired set before the pod watch had handed
    /// them over (right after a gateway start): their status is asked for again once the
    /// watch has.
    pub reported_before_pods: bool,
    /// Labels of the hello last applied to the Node (to remove ones the device dropped).
    pub applied_labels: Option<BTreeMap<String, String>>,
    /// Whether the Node with this device's name is ours to manage.
    pub claim: NodeClaim,
    /// Whether the pod watch was asked to hand over this device's pods.
    pub adopted: bool,
    /// A store write of this device's desired set failed: nothing is sent to the device
    /// until the set is stored again (retried every tick).
    pub persist_failed: bool,
}

impl DeviceEntry {
    pub fn new(sync: DeviceSync, report: Option<NodeReport>, claim: NodeClaim) -> Self {
        Self {
            sync,
            report,
            state_online: None,
            last_seen: None,
            online: false,
            offline_since: None,
            ready_since: None,
            node_registered: false,
            node_uid: None,
            node_pending: false,
            last_lease: None,
            last_node_status: None,
            node_dirty: true,
            last_status_sequence: None,
            status_resyncs: 0,
            reported_before_pods: false,
            applied_labels: None,
            adopted: claim.is_owned(),
            claim,
            persist_failed: false,
        }
    }

    /// The device's address, from its last hello.
    pub fn host_ip(&self) -> Option<String> {
        self.report.as_ref().and_then(device_internal_ip)
    }
}

/// One pod bound to a device of the fleet.
#[derive(Debug)]
pub(super) struct PodEntry {
    pub pod: Arc<Pod>,
    pub device: DeviceId,
    pub last_patched: Option<PodStatus>,
    pub phase: Option<String>,
    pub desired_at: Option<Instant>,
    pub failure: Option<String>,
}

impl PodEntry {
    /// Namespace and name of the pod.
    pub fn key(&self) -> (String, String) {
        let meta = &self.pod.metadata;
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// Moves the pod to `phase` (the pods-by-phase metric follows).
    pub fn set_phase(&mut self, phase: Option<String>, out: &mut Effects) {
        out.push(FleetEffect::Metric(MetricUpdate::PodPhase {
            from: self.phase.clone(),
            to: phase.clone(),
        }));
        self.phase = phase;
    }
}

/// The fleet's pods, by uid, by namespace/name and by device.
#[derive(Debug, Default)]
pub(super) struct PodBook {
    pub by_uid: HashMap<String, PodEntry>,
    pub by_name: HashMap<(String, String), String>,
    /// The uids bound to each device, so work for one device (a device coming back, a
    /// device removed) does not scan the whole fleet's pods.
    by_device: HashMap<DeviceId, BTreeSet<String>>,
}

impl PodBook {
    /// The entry of pod `uid`, bound to `device`: created from `pod` when new, else
    /// given the new pod object and device (a pod's node never changes in Kubernetes, but
    /// a recreated device entry may bring the same uid back).
    pub fn upsert(&mut self, uid: &str, pod: &Arc<Pod>, device: &DeviceId) -> &mut PodEntry {
        let (namespace, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        self.by_name.insert((namespace, name), uid.to_owned());
        let entry = self
            .by_uid
            .entry(uid.to_owned())
            .or_insert_with(|| PodEntry {
                pod: pod.clone(),
                device: device.clone(),
                last_patched: None,
                phase: None,
                desired_at: None,
                failure: None,
            });
        if &entry.device != device {
            if let Some(uids) = self.by_device.get_mut(&entry.device) {
                uids.remove(uid);
                if uids.is_empty() {
                    self.by_device.remove(&entry.device);
                }
            }
        }
        entry.pod = pod.clone();
        entry.device = device.clone();
        self.by_device
            .entry(device.clone())
            .or_default()
            .insert(uid.to_owned());
        entry
    }

    /// The pods bound to `device`, by uid.
    pub fn on_device<'a>(
        &'a self,
        device: &DeviceId,
    ) -> impl Iterator<Item = (&'a String, &'a PodEntry)> + 'a {
        self.by_device
            .get(device)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.by_uid.get_key_value(uid))
    }

    /// Forgets a pod; the pods-by-phase metric no longer counts it.
    pub fn remove(&mut self, uid: &str, out: &mut Effects) -> Option<PodEntry> {
        let entry = self.by_uid.remove(uid)?;
        if let Some(uids) = self.by_device.get_mut(&entry.device) {
            uids.remove(uid);
            if uids.is_empty() {
                self.by_device.remove(&entry.device);
            }
        }
        out.push(FleetEffect::ForgetLogTails {
            pod_uid: uid.to_owned(),
        });
        out.push(FleetEffect::Metric(MetricUpdate::PodPhase {
            from: entry.phase.clone(),
            to: None,
        }));
        let key = entry.key();
        if self.by_name.get(&key).map(String::as_str) == Some(uid) {
            self.by_name.remove(&key);
        }
        Some(entry)
    }

    /// Forgets every pod bound to `device`.
    pub fn remove_device(&mut self, device: &DeviceId, out: &mut Effects) {
        let uids: Vec<String> = self
            .by_device
            .get(device)
            .map(|uids| uids.iter().cloned().collect())
            .unwrap_or_default();
        for uid in uids {
            self.remove(&uid, out);
        }
    }
}

/// The whole fleet: the pure state machine the runner drives.
#[derive(Debug)]
pub struct FleetState {
    pub(super) settings: FleetSettings,
    pub(super) devices: HashMap<DeviceId, DeviceEntry>,
    pub(super) pods: PodBook,
    pub(super) introductions: Introductions,
    pub(super) retirements: Retirements,
}

impl FleetState {
    /// A fleet of the stored devices (offline until they are heard from).
    pub fn restore(
        settings: FleetSettings,
        stored: impl IntoIterator<Item = (DeviceId, PersistedDevice)>,
        mut reports: HashMap<DeviceId, NodeReport>,
    ) -> Self {
        let devices = stored
            .into_iter()
            .map(|(device, persisted)| {
                let report = reports.remove(&device);
                let sync = DeviceSync::restore(device.clone(), persisted);
                // stored devices were confirmed by an earlier run; their next hello
                // checks the Node again
                let entry = DeviceEntry::new(sync, report, NodeClaim::Owned);
                (device, entry)
            })
            .collect();
        Self {
            settings,
            devices,
            pods: PodBook::default(),
            introductions: Introductions::default(),
            retirements: Retirements::default(),
        }
    }

    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// Decides what an input changes and what must be done about it.
    pub fn handle(&mut self, input: FleetInput, now: Now) -> Effects {
        let mut out = Effects::new();
        match input {
            FleetInput::Device { frame, revocation } => {
                self.on_device_message(&frame.device, frame.message, &revocation, now, &mut out)
            }
            FleetInput::PodTranslated {
                device,
                pod,
                result,
            } => self.on_pod_translated(&device, pod, result, now, &mut out),
            FleetInput::PodRefreshed(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(e) = self.pods.by_uid.get_mut(&uid) {
                    e.pod = pod;
                }
            }
            FleetInput::PodDeleted { uid } => self.on_pod_deleted(&uid, now, &mut out),
            FleetInput::PodsSynced { device, present } => {
                self.on_pods_synced(&device, present, now, &mut out)
            }
            FleetInput::Kube(feedback) => self.on_feedback(feedback, now, &mut out),
            FleetInput::Tick { revoked } => self.tick(&revoked, now, &mut out),
            FleetInput::BrokerSessionLost => self.on_broker_session_lost(now, &mut out),
            FleetInput::LogRequested {
                device,
                id,
                request,
            } => Self::on_log_requested(device, id, request, &mut out),
            FleetInput::LogCancelled { device, id } => Self::on_log_cancelled(device, id, &mut out),
            FleetInput::DesiredSetNotStored { device } => {
                if let Some(entry) = self.devices.get_mut(&device) {
                    entry.persist_failed = true;
                }
            }
            FleetInput::HandedOver { device, to_us } => match to_us {
                true => self.adopt(&device, &mut out),
                false => self.release(&device, &mut out),
            },
        }
        out
    }

    fn on_device_message(
        &mut self,
        device: &DeviceId,
        message: DeviceMessage,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) {
        // revocation holds for every message, not only hellos (refused at admission): a
        // revoked device that is still connected (an external broker without a fresh
        // CRL, the embedded broker) is forgotten and gets nothing more
        if *revocation == Revocation::Revoked {
            let hello = matches!(message, DeviceMessage::Hello(_));
            out.push(FleetEffect::Reject(crate::hostile_input::Rejection::new(
                device.as_str(),
                if hello {
                    crate::hostile_input::RejectReason::NotAdmitted
                } else {
                    crate::hostile_input::RejectReason::Revoked
                },
                if hello {
                    "device is revoked"
                } else {
                    "message from a revoked device"
                },
            )));
            return self.refuse_retired(device, hello, now, out);
        }
        match message {
            DeviceMessage::Hello(report) => self.on_hello(device, *report, revocation, now, out),
            DeviceMessage::Heartbeat(hb) => {
                let observed_generation = hb.observed_generation;
                let input = SyncInput::Heartbeat {
                    observed_generation,
                };
                self.heard_with(device, input, revocation, now, out)
            }
            DeviceMessage::State { state, retained } => {
                self.on_state(device, &state, retained, revocation, now, out)
            }
            DeviceMessage::Status(report) => self.on_status(device, report, revocation, now, out),
            DeviceMessage::Events(report) => self.on_events(device, &report, revocation, now, out),
            DeviceMessage::Resync(r) => {
                let known_generation = r.known_generation;
                let input = SyncInput::ResyncRequested { known_generation };
                self.heard_with(device, input, revocation, now, out)
            }
            DeviceMessage::LogChunk { request, chunk } => {
                Self::on_log_chunk(device, request, chunk, out)
            }
            DeviceMessage::LogTail(report) => self.on_log_tail(device, report, out),
            // filed by the `Fleet` handle in `usage_stats` before reaching the runner
            DeviceMessage::Stats(_) => {}
            // handed to the agent rollout by the `Fleet` handle
            DeviceMessage::AgentUpdate(_) => {}
            // handed to the image pre-pull by the `Fleet` handle
            DeviceMessage::Prepull(_) => {}
            DeviceMessage::Stream { stream, message } => {
                Self::on_stream_message(device, stream, message, out)
            }
        }
    }

    /// The entry of the device a message came from (and the fleet's pods, borrowed
    /// beside it), or `None` after asking a device the fleet does not know to introduce
    /// itself.
    pub(super) fn sender(
        &mut self,
        device: &DeviceId,
        revocation: &Revocation,
        now: Now,
        out: &mut Effects,
    ) -> Option<(&mut DeviceEntry, &mut PodBook)> {
        match self.devices.get_mut(device) {
            Some(entry) => Some((entry, &mut self.pods)),
            None => {
                let settings = &self.settings;
                self.introductions.unknown_device(
                    device,
                    || admitted(settings, device, revocation).is_ok(),
                    now,
                    out,
                );
                None
            }
        }
    }

    // ---- queries ------------------------------------------------------------------

    /// The device ids the fleet knows.
    pub fn device_ids(&self) -> impl Iterator<Item = &DeviceId> {
        self.devices.keys()
    }

    pub fn knows(&self, device: &DeviceId) -> bool {
        self.devices.contains_key(device)
    }

    /// Whether pods bound to `device`'s node are ours: a device whose Node the gateway
    /// manages.
    pub fn is_owned(&self, device: &DeviceId) -> bool {
        self.devices.get(device).is_some_and(|e| e.claim.is_owned())
    }

    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.devices.get(device).is_some_and(|d| d.online)
    }

    /// Whether the device's desired set waits for a store write that failed.
    pub fn is_held_back(&self, device: &DeviceId) -> bool {
        self.devices.get(device).is_some_and(|e| e.persist_failed)
    }

    /// Downward-API facts about a device's node.
    pub fn node_context(&self, device: &DeviceId) -> NodeContext {
        let report = self.devices.get(device).and_then(|e| e.report.as_ref());
        let alloc = report.map(|r| {
            if r.allocatable == Default::default() {
                r.capacity.clone()
            } else {
                r.allocatable.clone()
            }
        });
        NodeContext {
            node_name: device.to_string(),
            host_ip: report.and_then(device_internal_ip),
            allocatable_cpu_millis: alloc.as_ref().map_or(0, |a| a.cpu_millis),
            allocatable_memory_bytes: alloc.as_ref().map_or(0, |a| a.memory_bytes),
            allocatable_storage_bytes: alloc.as_ref().map_or(0, |a| a.ephemeral_storage_bytes),
            active_deadline: report.is_some_and(|r| r.capabilities.active_deadline),
            runs_init_containers: report.is_some_and(|r| r.capabilities.init_containers),
            lifecycle_hooks: report.is_some_and(|r| r.capabilities.lifecycle_hooks),
            grpc_probes: report.is_some_and(|r| r.capabilities.grpc_probes),
            assigns_gpus: report.is_some_and(|r| r.capabilities.gpu_assignment),
            agent_version: report
                .map(|r| format!("edge-agent {}", r.agent_version))
                .unwrap_or_else(|| "not connected yet".to_owned()),
        }
    }

    /// Every pod on the gateway's nodes.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.by_uid.values().map(|p| p.pod.clone()).collect()
    }

    /// The current desired set of a device (for diagnostics and tests).
    pub fn desired_set(&self, device: &DeviceId) -> Option<DesiredSet> {
        self.devices.get(device).map(|d| d.sync.desired_set())
    }

    /// Where pod `namespace/name` runs, if it is one of the fleet's.
    pub fn pod_placement(&self, namespace: &str, name: &str) -> Option<PodPlacement> {
        let uid = self
            .pods
            .by_name
            .get(&(namespace.to_owned(), name.to_owned()))?;
        let entry = self.pods.by_uid.get(uid)?;
        let containers = entry
            .pod
            .spec
            .as_ref()
            .map(|s| {
                let ephemeral = s.ephemeral_containers.iter().flatten().map(|e| &e.name);
                s.containers
                    .iter()
                    .map(|c| &c.name)
                    .chain(ephemeral)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Some(PodPlacement {
            device: entry.device.clone(),
            uid: uid.clone(),
            containers,
        })
    }

    /// What the device's last hello says about streams.
    pub fn stream_readiness(&self, device: &DeviceId) -> DeviceReadiness {
        let entry = self.devices.get(device);
        let report = entry.and_then(|e| e.report.as_ref());
        DeviceReadiness {
            online: entry.is_some_and(|e| e.online),
            streams: report.and_then(|r| r.capabilities.streams),
            agent_version: report.map(|r| r.agent_version.clone()).unwrap_or_default(),
        }
    }

    /// Where to send a log request for a container: the device and the pod's uid.
    pub fn log_target(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<(DeviceId, String), LogTargetError> {
        let not_found = || LogTargetError::PodNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let uid = self
            .pods
            .by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(not_found)?;
        let entry = self.pods.by_uid.get(uid).ok_or_else(not_found)?;
        let has_container = entry.pod.spec.as_ref().is_some_and(|s| {
            s.containers.iter().any(|c| c.name == container)
                || s.ephemeral_containers
                    .iter()
                    .flatten()
                    .any(|e| e.name == container)
        });
        if !has_container {
            return Err(LogTargetError::ContainerNotFound {
                name: name.to_owned(),
                container: container.to_owned(),
            });
        }
        if !self.is_online(&entry.device) {
            return Err(LogTargetError::DeviceOffline(entry.device.to_string()));
        }
        Ok((entry.device.clone(), uid.clone()))
    }
}
