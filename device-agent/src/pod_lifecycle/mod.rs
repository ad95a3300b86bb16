//! The reconciler: a pure, synchronous state machine (`handle(input) -> effects`) that
//! brings the containers on the device to the desired pods, the way the kubelet does.
//!
//! Inputs are the desired set, snapshots of the managed containers (found by labels,
//! so a restarted agent adopts what is running), outcomes of effects it asked for, and
//! probe results. Effects are runtime operations (pull, create, start, stop, remove),
//! volume preparation, probe workers, and status reports / events. A thin async loop
//! ([`crate::agent`]) executes effects and feeds outcomes back.
//!
//! | file | what is there |
//! |---|---|
//! | `mod.rs` | [`PodLifecycle`]: its state, [`PodLifecycle::handle`], desired sets and listings taken in, queries |
//! | `inputs_effects.rs` | [`Input`], [`Outcome`], [`ProbeReport`], [`Effect`]: what goes in and comes out |
//! | `container_memory.rs` | what is remembered per pod and per container between passes; [`spec_hash`] |
//! | `outcomes.rs` | results of effects and probe reports turned into memory and events |
//! | `reconcile.rs` | desired against actual: tear down, bring up, restart with back-off |
//! | `eviction.rs` | pods the node ends (evicted under pressure, past their deadline): stopped, never restarted, reported Failed with the reason |
//! | `active_deadline.rs` | `activeDeadlineSeconds`: a pod active longer is ended with `DeadlineExceeded` |
//! | `init_sequence.rs` | init and sidecar containers: order, restart policy, progress, sidecars stopping last |
//! | `sandbox.rs` | the pod's infra container: its spec, state, the pod IP, joining it, teardown order |
//! | `lifecycle_hooks.rs` | postStart and preStop hooks: when they run, what their failure does |
//! | `termination_message.rs` | termination messages of exited containers, read by effect |
//! | `ephemeral.rs` | ephemeral containers (`kubectl debug`): the namespaces they join, started once |
//! | `gpu_assignment.rs` | `nvidia.com/gpu` devices per container: admission (`UnexpectedAdmissionError`), assignment kept in container labels, release |
//! | `status_report.rs` | pod and container status as the kubelet reports it; [`pod_phase`] |

mod active_deadline;
mod container_memory;
mod ephemeral;
mod eviction;
mod gpu_assignment;
mod init_sequence;
mod inputs_effects;
mod lifecycle_hooks;
mod outcomes;
mod reconcile;
mod sandbox;
mod status_report;
mod termination_message;
mod unlisted_creates;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use edge_protocol::{
    ContainerSpec, DesiredSet, EventType, PodEvent, PodSpec, PodStatus, UnixMillis,
};

use crate::config::{LifecycleTimings, SandboxSettings};
use crate::container_labels::SANDBOX_CONTAINER_NAME;
use crate::container_runtime::{ContainerSnapshot, RunState};

pub use container_memory::spec_hash;
use container_memory::{ContainerMemory, PodEntry, ProbeState, VolumeState, spec_hash_bytes};
pub use gpu_assignment::GPU_RESOURCE;
use gpu_assignment::GpuPool;
pub use init_sequence::{InitProgress, is_sidecar, restart_policy_of};
pub use inputs_effects::{
    ContainerKey, Effect, FailureReason, Input, NamespaceShare, Outcome, ProbeKind, ProbeReport,
    SandboxRole, VolumeSetupError,
};
pub use lifecycle_hooks::{HookError, HookKind, MIN_GRACE_AFTER_PRE_STOP};
pub use status_report::pod_phase;
use unlisted_creates::UnlistedCreates;

/// Why a log request names no container on this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogTargetError {
    #[error("the pod or container is not on this device")]
    UnknownContainer,
    #[error("the container has no previous instance")]
    NoPreviousInstance,
}

/// The reconciler.
#[derive(Debug)]
pub struct PodLifecycle {
    timings: LifecycleTimings,
    node_ip: Option<String>,
    /// The infra container of pods not on the host network (`None`: each container has
    /// its own network namespace).
    sandbox: Option<SandboxSettings>,
    generation: u64,
    pods: BTreeMap<String, PodEntry>,
    containers: Vec<ContainerSnapshot>,
    listed: bool,
    now: UnixMillis,
    stopping: HashSet<String>,
    removing: HashSet<String>,
    start_failed: HashMap<String, String>,
    probes: HashMap<String, ProbeState>,
    reported: HashMap<String, PodStatus>,
    /// Pods gone from the desired set whose containers are being removed.
    orphans: BTreeMap<String, (String, String)>,
    /// Containers asked for and not yet seen in a listing: keep their infra container.
    unlisted_creates: UnlistedCreates,
    events: Vec<PodEvent>,
    effects: Vec<Effect>,
    hooks: lifecycle_hooks::HooksInFlight,
    termination: termination_message::TerminationMessages,
    /// The node's `nvidia.com/gpu` devices and the containers holding them.
    gpus: GpuPool,
}

impl PodLifecycle {
    /// `node_ip` is the pod IP of host-network pods.
    pub fn new(timings: LifecycleTimings, node_ip: Option<String>) -> Self {
        Self {
            timings,
            node_ip,
            sandbox: None,
            generation: 0,
            pods: BTreeMap::new(),
            containers: Vec::new(),
            listed: false,
            now: 0,
            stopping: HashSet::new(),
            removing: HashSet::new(),
            start_failed: HashMap::new(),
            probes: HashMap::new(),
            reported: HashMap::new(),
            orphans: BTreeMap::new(),
            unlisted_creates: UnlistedCreates::default(),
            events: Vec::new(),
            effects: Vec::new(),
            hooks: Default::default(),
            termination: Default::default(),
            gpus: GpuPool::default(),
        }
    }

    /// Gives every pod not on the host network an infra container whose network, IPC
    /// and UTS namespaces its containers share (the agent always does).
    pub fn with_sandbox(mut self, sandbox: SandboxSettings) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn pods_running(&self) -> u32 {
        let running = self
            .pods
            .keys()
            .filter(|uid| {
                self.containers.iter().any(|c| {
                    &c.identity.pod_uid == *uid
                        && !c.identity.is_sandbox()
                        && matches!(c.state, RunState::Running { .. })
                })
            })
            .count();
        u32::try_from(running).unwrap_or(u32::MAX)
    }

    /// The running containers of the desired pods that did not opt out of the gateway's
    /// offline log cache (whose new output goes out in log tail reports).
    pub fn log_cached_containers(&self) -> Vec<&ContainerSnapshot> {
        self.containers
            .iter()
            .filter(|c| matches!(c.state, RunState::Running { .. }) && !c.identity.is_sandbox())
            .filter(|c| {
                self.pods
                    .get(&c.identity.pod_uid)
                    .is_some_and(|p| !p.spec.log_cache_opt_out)
            })
            .collect()
    }

    /// The container a log request is about: the current instance, or with `previous`
    /// the one before it.
    pub fn log_target(
        &self,
        pod_uid: &str,
        namespace: &str,
        pod_name: &str,
        container: &str,
        previous: bool,
    ) -> Result<String, LogTargetError> {
        let mut instances: Vec<&ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| {
                (c.identity.pod_uid == pod_uid
                    || (pod_uid.is_empty()
                        && c.identity.pod_namespace == namespace
                        && c.identity.pod_name == pod_name))
                    && c.identity.container_name == container
            })
            .collect();
        instances.sort_by_key(|c| std::cmp::Reverse(c.identity.restart_count));
        match (instances.first(), previous) {
            (None, _) => Err(LogTargetError::UnknownContainer),
            (Some(c), false) => Ok(c.id.clone()),
            (Some(_), true) => instances
                .get(1)
                .map(|c| c.id.clone())
                .ok_or(LogTargetError::NoPreviousInstance),
        }
    }

    /// The current instance of each container of a pod the agent runs (`container`
    /// names one), for exec, attach and port-forward. Only containers the agent manages
    /// (by its labels) are ever returned; the pod's infra container only when no
    /// container is named (port-forward enters the pod through it).
    pub fn stream_containers(
        &self,
        pod_uid: &str,
        namespace: &str,
        pod_name: &str,
        container: Option<&str>,
    ) -> Vec<ContainerSnapshot> {
        let mut current: BTreeMap<&str, &ContainerSnapshot> = BTreeMap::new();
        for c in &self.containers {
            let id = &c.identity;
            let same_pod = if pod_uid.is_empty() {
                id.pod_namespace == namespace && id.pod_name == pod_name
            } else {
                id.pod_uid == pod_uid
            };
            if !same_pod
                || container.is_some_and(|name| id.container_name != name || id.is_sandbox())
            {
                continue;
            }
            let slot = current.entry(id.container_name.as_str()).or_insert(c);
            if id.restart_count > slot.identity.restart_count {
                *slot = c;
            }
        }
        current.into_values().cloned().collect()
    }

    /// Status of every pod the device has (the answer to a resync).
    pub fn full_status(&self) -> Vec<PodStatus> {
        let mut out: Vec<PodStatus> = self.pods.values().map(|p| self.pod_status(p)).collect();
        for (uid, (ns, name)) in &self.orphans {
            out.push(self.orphan_status(uid, ns, name));
        }
        out
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Desired(set) => self.on_desired(set),
            Input::Containers { list, now } => {
                self.now = self.now.max(now);
                self.containers = list;
                self.listed = true;
                self.adopt_gpus();
                // Pods known before the first listing (from the store, after an agent
                // restart) started no later than their oldest container.
                for (uid, pod) in self.pods.iter_mut() {
                    if pod.accepted_at == 0 {
                        pod.accepted_at = self
                            .containers
                            .iter()
                            .filter(|c| &c.identity.pod_uid == uid)
                            .filter_map(|c| match c.state {
                                RunState::Running { started_at } => Some(started_at),
                                RunState::Exited { started_at, .. } => started_at,
                                RunState::Created => None,
                            })
                            .filter(|t| *t > 0)
                            .min()
                            .unwrap_or(self.now)
                            .min(self.now);
                    }
                }
                let live: HashSet<&String> = self.containers.iter().map(|c| &c.id).collect();
                self.unlisted_creates.listed(&live, self.now);
                self.start_failed.retain(|id, _| live.contains(id));
                self.removing.retain(|id| live.contains(id));
                let running: HashSet<&String> = self
                    .containers
                    .iter()
                    .filter(|c| matches!(c.state, RunState::Running { .. }))
                    .map(|c| &c.id)
                    .collect();
                // A stop is done once a listing shows the container stopped.
                self.stopping.retain(|id| running.contains(id));
                // Containers that vanished (removed behind the agent's back): stop probing.
                let gone: Vec<String> = self
                    .probes
                    .keys()
                    .filter(|id| !running.contains(id))
                    .cloned()
                    .collect();
                for container_id in gone {
                    self.probes.remove(&container_id);
                    self.effects.push(Effect::UnwatchProbes { container_id });
                }
                self.forget_hooks_of_gone();
                self.read_termination_messages();
            }
            Input::Tick { now } => self.now = self.now.max(now),
            Input::Done(outcome) => self.on_outcome(outcome),
            Input::Probe(report) => self.on_probe(report),
            Input::Evict { pod_uid, message } => self.on_evict(&pod_uid, message),
        }
        // Nothing is decided or reported before the first look at the containers: a
        // restarted agent must adopt what runs instead of reporting it as missing.
        if self.listed {
            self.reconcile();
            self.report_changes();
        }
        let mut effects = std::mem::take(&mut self.effects);
        if !self.events.is_empty() {
            effects.push(Effect::Events(std::mem::take(&mut self.events)));
        }
        effects
    }

    fn on_desired(&mut self, set: DesiredSet) {
        self.generation = set.generation;
        let mut next = BTreeMap::new();
        for spec in set.pods {
            if spec.uid.is_empty() {
                continue;
            }
            let uid = spec.uid.clone();
            let volumes_hash = format!(
                "{:?}",
                serde_json::to_vec(&spec.volumes)
                    .map(|v| spec_hash_bytes(&v))
                    .unwrap_or_default()
            );
            let entry = match self.pods.remove(&uid) {
                Some(mut old) => {
                    if old.volumes_hash != volumes_hash && old.volumes != VolumeState::InFlight {
                        old.volumes = VolumeState::NotPrepared;
                    }
                    old.volumes_hash = volumes_hash;
                    old.spec = Arc::new(spec);
                    old
                }
                None => PodEntry {
                    spec: Arc::new(spec),
                    accepted_at: self.now,
                    volumes: VolumeState::NotPrepared,
                    volumes_hash,
                    containers: BTreeMap::new(),
                    removed_reported: false,
                    ended: None,
                },
            };
            next.insert(uid, entry);
        }
        // Pods that left the set are removed like orphans.
        for (uid, old) in std::mem::take(&mut self.pods) {
            if !old.removed_reported {
                self.orphans
                    .insert(uid, (old.spec.namespace.clone(), old.spec.name.clone()));
            }
        }
        for uid in next.keys() {
            self.orphans.remove(uid);
        }
        self.pods = next;
    }

    fn event(
        &mut self,
        spec: &PodSpec,
        container: Option<&str>,
        event_type: EventType,
        reason: &str,
        message: String,
    ) {
        // The infra container is not a container of the pod spec: only its failures
        // are events (the kubelet's FailedCreatePodSandBox).
        if container == Some(SANDBOX_CONTAINER_NAME) && event_type == EventType::Normal {
            return;
        }
        let container = container.filter(|c| *c != SANDBOX_CONTAINER_NAME);
        self.events.push(PodEvent {
            pod_uid: spec.uid.clone(),
            namespace: spec.namespace.clone(),
            pod_name: spec.name.clone(),
            container: container.map(str::to_owned),
            event_type,
            reason: reason.to_owned(),
            message,
            timestamp: self.now,
            count: 1,
        });
    }

    fn container_spec(&self, key: &ContainerKey) -> Option<(Arc<PodSpec>, ContainerSpec)> {
        let pod = self.pods.get(&key.0)?;
        if key.1 == SANDBOX_CONTAINER_NAME {
            return Some((pod.spec.clone(), self.sandbox_spec(&pod.spec)?));
        }
        let c = match pod.spec.container(&key.1) {
            Some(c) => c.clone(),
            None => pod.spec.ephemeral_container(&key.1)?.to_container_spec(),
        };
        Some((pod.spec.clone(), c))
    }

    fn memory(&mut self, key: &ContainerKey) -> Option<&mut ContainerMemory> {
        Some(
            self.pods
                .get_mut(&key.0)?
                .containers
                .entry(key.1.clone())
                .or_default(),
        )
    }

    /// The probe state of a running container instance; before its probe workers are
    /// set up, the state a kubelet starts from (see [`ProbeState::initial`]).
    fn probe_state(&self, container_id: &str, c: &ContainerSpec) -> ProbeState {
        self.probes
            .get(container_id)
            .copied()
            .unwrap_or_else(|| ProbeState::initial(c))
    }

    /// Instances of one container, newest (highest restart count) first.
    fn instances(&self, uid: &str, name: &str) -> Vec<ContainerSnapshot> {
        let mut v: Vec<ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| c.identity.pod_uid == uid && c.identity.container_name == name)
            .cloned()
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.identity.restart_count));
        v
    }
}
