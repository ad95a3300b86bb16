//! The reconciler: a pure, synchronous state machine (`handle(input) -> effects`) that
//! brings the containers on the device to the desired pods, the way the kubelet does.
//!
//! Inputs are the desired set, snapshots of the managed containers (found by labels,
//! so a restarted agent adopts what is running), outcomes of effects it asked for, and
//! probe results. Effects are runtime operations (pull, create, start, stop, remove),
//! volume preparation, probe workers, and status reports / events. A thin async loop
//! ([`crate::agent`]) executes effects and feeds outcomes back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{
    ContainerSpec, ContainerState, ContainerStatus, DesiredSet, EventType, PodEvent, PodPhase,
    PodSpec, PodStatus, PullPolicy, RegistryCredential, RestartPolicy, UnixMillis,
};

use crate::backoff::Backoff;
use crate::config::LifecycleTimings;
use crate::container_runtime::{ContainerSnapshot, RunState};

/// Pod uid and container name.
pub type ContainerKey = (String, String);

#[derive(Debug, Clone)]
pub enum Input {
    /// A new desired set (from the gateway or the local store at start).
    Desired(DesiredSet),
    /// Every managed container on the device, freshly listed.
    Containers {
        list: Vec<ContainerSnapshot>,
        now: UnixMillis,
    },
    /// Time passed (back-offs may have expired).
    Tick { now: UnixMillis },
    /// An effect finished.
    Done(Outcome),
    /// A probe worker crossed a threshold.
    Probe(ProbeReport),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    VolumesReady {
        pod_uid: String,
        result: Result<(), String>,
    },
    /// An actual registry pull began (the image was not present or policy is Always).
    PullStarted {
        key: ContainerKey,
    },
    ImageReady {
        key: ContainerKey,
        pulled: bool,
    },
    ImageFailed {
        key: ContainerKey,
        message: String,
    },
    Created {
        key: ContainerKey,
        id: String,
    },
    /// `reason` is the kubelet's: `CreateContainerConfigError` or `CreateContainerError`.
    CreateFailed {
        key: ContainerKey,
        reason: String,
        message: String,
    },
    Started {
        key: ContainerKey,
        id: String,
    },
    StartFailed {
        key: ContainerKey,
        id: String,
        message: String,
    },
    Stopped {
        id: String,
    },
    StopFailed {
        id: String,
        message: String,
    },
    Removed {
        id: String,
    },
    RemoveFailed {
        id: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A probe result after thresholds were applied (sent on transitions only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub container_id: String,
    pub kind: ProbeKind,
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    PrepareVolumes {
        pod: Arc<PodSpec>,
    },
    EnsureImage {
        key: ContainerKey,
        image: String,
        policy: PullPolicy,
        credentials: Vec<RegistryCredential>,
    },
    Create {
        key: ContainerKey,
        pod: Arc<PodSpec>,
        restart_count: u32,
        spec_hash: String,
    },
    Start {
        key: ContainerKey,
        id: String,
    },
    Stop {
        id: String,
        grace: Duration,
    },
    Remove {
        id: String,
    },
    CleanupPod {
        pod_uid: String,
    },
    WatchProbes {
        container_id: String,
        container: Box<ContainerSpec>,
        /// Address HTTP and TCP probes connect to when the probe names no host.
        target_ip: String,
    },
    UnwatchProbes {
        container_id: String,
    },
    /// Pods whose status changed.
    Report(Vec<PodStatus>),
    Events(Vec<PodEvent>),
}

/// Hash of what a container was created from; a change replaces the container (in
/// Kubernetes only the image of a running pod can change). The environment is left out:
/// the gateway resolves it from ConfigMaps and Secrets, and like the kubelet the agent
/// does not restart a container when those change later.
pub fn spec_hash(c: &ContainerSpec) -> String {
    let mut c = c.clone();
    c.env.clear();
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    format!("{:016x}", spec_hash_bytes(&bytes))
}

#[derive(Debug, Clone, PartialEq)]
enum VolumeState {
    NotPrepared,
    InFlight,
    Ready,
    Failed {
        message: String,
        at: UnixMillis,
        backoff: Backoff,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Image,
    Create,
    Start,
}

/// What the machine remembers about one container of a desired pod.
#[derive(Debug, Clone, Default)]
struct ContainerMemory {
    op: Option<Op>,
    /// Restart count of the instance being brought up (image → create → start).
    pipeline: Option<u32>,
    image_ok: bool,
    /// Pull/create failures: (waiting reason, message, when) and their back-off.
    failure: Option<(String, String, UnixMillis)>,
    attempt_backoff: Backoff,
    backoff_event_sent: bool,
    /// Crash-loop back-off; `None` until first needed (then rebuilt from restart count).
    crash_backoff: Option<Backoff>,
    /// Exited instance for which a restart was already decided.
    restart_decided_for: Option<String>,
    crash_event_for: Option<String>,
    /// The wait of the current crash-loop back-off (for the status message).
    crash_wait: Duration,
    /// Highest restart count ever created, so names never collide.
    max_restart: Option<u32>,
    /// A container created by us that no listing has shown yet (and since when).
    awaiting: Option<(String, UnixMillis)>,
}

/// How long a created container may be missing from listings before it counts as gone.
const AWAITING_LIMIT_MS: UnixMillis = 30_000;

#[derive(Debug, Clone)]
struct PodEntry {
    spec: Arc<PodSpec>,
    accepted_at: UnixMillis,
    volumes: VolumeState,
    volumes_hash: String,
    containers: BTreeMap<String, ContainerMemory>,
    removed_reported: bool,
}

#[derive(Debug, Clone, Copy)]
struct ProbeState {
    ready: bool,
    started: bool,
    liveness_failed: bool,
}

/// The reconciler.
#[derive(Debug)]
pub struct PodLifecycle {
    timings: LifecycleTimings,
    node_ip: Option<String>,
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
    events: Vec<PodEvent>,
    effects: Vec<Effect>,
}

impl PodLifecycle {
    /// `node_ip` is the pod IP of host-network pods.
    pub fn new(timings: LifecycleTimings, node_ip: Option<String>) -> Self {
        Self {
            timings,
            node_ip,
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
            events: Vec::new(),
            effects: Vec::new(),
        }
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
                    &c.identity.pod_uid == *uid && matches!(c.state, RunState::Running { .. })
                })
            })
            .count();
        u32::try_from(running).unwrap_or(u32::MAX)
    }

    /// The container a log request is about: the current instance, or with `previous`
    /// the one before it. `Err(true)` = pod/container unknown, `Err(false)` = no previous.
    pub fn log_target(
        &self,
        pod_uid: &str,
        namespace: &str,
        pod_name: &str,
        container: &str,
        previous: bool,
    ) -> Result<String, bool> {
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
            (None, _) => Err(true),
            (Some(c), false) => Ok(c.id.clone()),
            (Some(_), true) => instances.get(1).map(|c| c.id.clone()).ok_or(false),
        }
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
            }
            Input::Tick { now } => self.now = self.now.max(now),
            Input::Done(outcome) => self.on_outcome(outcome),
            Input::Probe(report) => self.on_probe(report),
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

    fn on_outcome(&mut self, outcome: Outcome) {
        let now = self.now;
        let timings = self.timings;
        match outcome {
            Outcome::VolumesReady { pod_uid, result } => {
                let Some(pod) = self.pods.get(&pod_uid) else {
                    return;
                };
                let spec = pod.spec.clone();
                let next = match result {
                    Ok(()) => VolumeState::Ready,
                    Err(message) => {
                        let mut backoff = match &pod.volumes {
                            VolumeState::Failed { backoff, .. } => *backoff,
                            _ => Backoff::default(),
                        };
                        backoff.advance(&timings);
                        self.event(
                            &spec,
                            None,
                            EventType::Warning,
                            "FailedMount",
                            format!("MountVolume.SetUp failed: {message}"),
                        );
                        VolumeState::Failed {
                            message,
                            at: now,
                            backoff,
                        }
                    }
                };
                if let Some(pod) = self.pods.get_mut(&pod_uid) {
                    pod.volumes = next;
                }
            }
            Outcome::PullStarted { key } => {
                if let Some((spec, c)) = self.container_spec(&key) {
                    self.event(
                        &spec,
                        Some(&key.1),
                        EventType::Normal,
                        "Pulling",
                        format!("Pulling image \"{}\"", c.image),
                    );
                }
            }
            Outcome::ImageReady { key, pulled } => {
                let Some((spec, c)) = self.container_spec(&key) else {
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.image_ok = true;
                    if m.failure.as_ref().is_some_and(|f| is_pull_reason(&f.0)) {
                        m.failure = None;
                        m.attempt_backoff.reset();
                    }
                }
                let message = if pulled {
                    format!("Successfully pulled image \"{}\"", c.image)
                } else {
                    format!("Container image \"{}\" already present on machine", c.image)
                };
                self.event(&spec, Some(&key.1), EventType::Normal, "Pulled", message);
            }
            Outcome::ImageFailed { key, message } => {
                let Some((spec, c)) = self.container_spec(&key) else {
                    return;
                };
                let never = c.image_pull_policy == PullPolicy::Never;
                let reason = if never {
                    "ErrImageNeverPull"
                } else {
                    "ErrImagePull"
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.attempt_backoff.advance(&timings);
                    m.backoff_event_sent = false;
                    m.failure = Some((reason.to_owned(), message.clone(), now));
                }
                if !never {
                    self.event(
                        &spec,
                        Some(&key.1),
                        EventType::Warning,
                        "Failed",
                        format!("Failed to pull image \"{}\": {message}", c.image),
                    );
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {reason}"),
                );
            }
            Outcome::Created { key, id } => {
                let Some((spec, _)) = self.container_spec(&key) else {
                    // The pod went away meanwhile: the next pass removes the container.
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = Some(Op::Start);
                    m.image_ok = false;
                    m.failure = None;
                    m.attempt_backoff.reset();
                    m.awaiting = Some((id.clone(), now));
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Normal,
                    "Created",
                    format!("Created container {}", key.1),
                );
                if spec.is_terminating() {
                    if let Some(m) = self.memory(&key) {
                        m.op = None;
                        m.pipeline = None;
                    }
                } else {
                    self.effects.push(Effect::Start { key, id });
                }
            }
            Outcome::CreateFailed {
                key,
                reason,
                message,
            } => {
                let Some((spec, _)) = self.container_spec(&key) else {
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.image_ok = false;
                    m.attempt_backoff.advance(&timings);
                    m.failure = Some((reason.clone(), message.clone(), now));
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {message}"),
                );
            }
            Outcome::Started { key, id: _ } => {
                let Some((spec, _)) = self.container_spec(&key) else {
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.pipeline = None;
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Normal,
                    "Started",
                    format!("Started container {}", key.1),
                );
            }
            Outcome::StartFailed { key, id, message } => {
                self.start_failed.insert(id, message.clone());
                let Some((spec, _)) = self.container_spec(&key) else {
                    return;
                };
                if let Some(m) = self.memory(&key) {
                    m.op = None;
                    m.pipeline = None;
                }
                self.event(
                    &spec,
                    Some(&key.1),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {message}"),
                );
            }
            Outcome::Stopped { .. } => {}
            Outcome::StopFailed { id, .. } => {
                self.stopping.remove(&id);
            }
            Outcome::Removed { id } => {
                self.containers.retain(|c| c.id != id);
                self.probes.remove(&id);
            }
            Outcome::RemoveFailed { id, .. } => {
                self.removing.remove(&id);
            }
        }
    }

    fn on_probe(&mut self, report: ProbeReport) {
        let Some(snapshot) = self
            .containers
            .iter()
            .find(|c| c.id == report.container_id)
            .cloned()
        else {
            return;
        };
        let Some(state) = self.probes.get_mut(&report.container_id) else {
            return;
        };
        match report.kind {
            ProbeKind::Liveness => state.liveness_failed = !report.success,
            ProbeKind::Readiness => state.ready = report.success,
            ProbeKind::Startup => {
                state.started = report.success;
                state.liveness_failed |= !report.success;
            }
        }
        if !report.success
            && let Some(pod) = self.pods.get(&snapshot.identity.pod_uid)
        {
            let spec = pod.spec.clone();
            self.event(
                &spec,
                Some(&snapshot.identity.container_name),
                EventType::Warning,
                "Unhealthy",
                format!("{} probe failed: {}", report.kind.name(), report.message),
            );
        }
    }

    fn container_spec(&self, key: &ContainerKey) -> Option<(Arc<PodSpec>, ContainerSpec)> {
        let pod = self.pods.get(&key.0)?;
        let c = pod.spec.containers.iter().find(|c| c.name == key.1)?;
        Some((pod.spec.clone(), c.clone()))
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

    fn reconcile(&mut self) {
        // Containers of pods nobody wants any more.
        let orphan_ids: Vec<ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| !self.pods.contains_key(&c.identity.pod_uid))
            .cloned()
            .collect();
        for c in &orphan_ids {
            self.orphans
                .entry(c.identity.pod_uid.clone())
                .or_insert_with(|| {
                    (
                        c.identity.pod_namespace.clone(),
                        c.identity.pod_name.clone(),
                    )
                });
            let grace = Duration::from_secs(c.identity.grace_period_seconds);
            self.tear_down(c, grace, None);
        }
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        for uid in uids {
            self.reconcile_pod(&uid);
        }
    }

    /// Stops a running container, removes a stopped one.
    fn tear_down(&mut self, c: &ContainerSnapshot, grace: Duration, spec: Option<&PodSpec>) {
        if matches!(c.state, RunState::Running { .. }) {
            if self.stopping.insert(c.id.clone()) {
                if let Some(spec) = spec {
                    self.event(
                        spec,
                        Some(&c.identity.container_name),
                        EventType::Normal,
                        "Killing",
                        format!("Stopping container {}", c.identity.container_name),
                    );
                }
                self.effects.push(Effect::Stop {
                    id: c.id.clone(),
                    grace,
                });
            }
        } else if !self.stopping.contains(&c.id) && self.removing.insert(c.id.clone()) {
            if self.probes.remove(&c.id).is_some() {
                self.effects.push(Effect::UnwatchProbes {
                    container_id: c.id.clone(),
                });
            }
            self.effects.push(Effect::Remove { id: c.id.clone() });
        }
    }

    fn reconcile_pod(&mut self, uid: &str) {
        let Some(pod) = self.pods.get(uid) else {
            return;
        };
        let spec = pod.spec.clone();
        if let Some(grace) = spec.deletion_grace_period_seconds {
            let mine: Vec<ContainerSnapshot> = self
                .containers
                .iter()
                .filter(|c| c.identity.pod_uid == uid)
                .cloned()
                .collect();
            for c in &mine {
                self.tear_down(c, Duration::from_secs(grace), Some(&spec));
            }
            let Some(pod) = self.pods.get(uid) else {
                return;
            };
            let busy = pod.containers.values().any(|m| m.op.is_some())
                || pod.volumes == VolumeState::InFlight;
            if mine.is_empty() && !busy && !pod.removed_reported {
                self.effects.push(Effect::CleanupPod {
                    pod_uid: uid.to_owned(),
                });
            }
            return;
        }
        // Volumes first.
        match &pod.volumes.clone() {
            VolumeState::NotPrepared => {
                self.effects
                    .push(Effect::PrepareVolumes { pod: spec.clone() });
                if let Some(p) = self.pods.get_mut(uid) {
                    p.volumes = VolumeState::InFlight;
                }
                return;
            }
            VolumeState::InFlight => return,
            VolumeState::Failed { at, backoff, .. } => {
                if !backoff.in_backoff(*at, self.now) {
                    self.effects
                        .push(Effect::PrepareVolumes { pod: spec.clone() });
                    if let Some(p) = self.pods.get_mut(uid) {
                        p.volumes = VolumeState::InFlight;
                    }
                }
                return;
            }
            VolumeState::Ready => {}
        }
        // Containers not (or no longer) in the spec.
        let strays: Vec<ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| {
                c.identity.pod_uid == uid
                    && !spec
                        .containers
                        .iter()
                        .any(|s| s.name == c.identity.container_name)
            })
            .cloned()
            .collect();
        for c in &strays {
            self.tear_down(
                c,
                Duration::from_secs(spec.termination_grace_period_seconds),
                Some(&spec),
            );
        }
        let mut seen = HashSet::new();
        for c in &spec.containers {
            if c.name.is_empty() || !seen.insert(c.name.clone()) {
                continue;
            }
            self.reconcile_container(&spec, c);
        }
    }

    fn reconcile_container(&mut self, spec: &Arc<PodSpec>, c: &ContainerSpec) {
        let key: ContainerKey = (spec.uid.clone(), c.name.clone());
        let instances = self.instances(&spec.uid, &c.name);
        let hash = spec_hash(c);
        let grace = Duration::from_secs(spec.termination_grace_period_seconds);
        // Keep the current and the previous instance (for `logs --previous`).
        for old in instances.iter().skip(2) {
            self.tear_down(old, grace, None);
        }
        let now = self.now;
        let (op, pipeline, max_restart) = {
            let Some(m) = self.memory(&key) else {
                return;
            };
            if let Some((id, since)) = &m.awaiting {
                if instances.iter().any(|i| &i.id == id)
                    || now.saturating_sub(*since) > AWAITING_LIMIT_MS
                {
                    m.awaiting = None;
                } else {
                    // Created but not listed yet: wait for the runtime to show it.
                    return;
                }
            }
            (m.op, m.pipeline, m.max_restart)
        };
        if op.is_some() {
            return;
        }
        if let Some(restart_count) = pipeline {
            self.drive(spec, c, &key, restart_count, &hash);
            return;
        }
        let Some(current) = instances.first().cloned() else {
            let next = max_restart.map_or(0, |m| m + 1);
            self.drive(spec, c, &key, next, &hash);
            return;
        };
        if let Some(previous) = instances.get(1)
            && matches!(previous.state, RunState::Running { .. })
        {
            self.tear_down(previous, grace, None);
        }
        if let Some(m) = self.memory(&key) {
            m.max_restart = Some(
                m.max_restart
                    .unwrap_or(0)
                    .max(current.identity.restart_count),
            );
        }
        let changed = !current.identity.spec_hash.is_empty() && current.identity.spec_hash != hash;
        match current.state.clone() {
            RunState::Created => {
                if let Some(message) = self.start_failed.get(&current.id).cloned() {
                    self.on_exited(spec, c, &key, &current, changed, Some(message));
                } else if let Some(m) = self.memory(&key) {
                    m.op = Some(Op::Start);
                    self.effects.push(Effect::Start {
                        key,
                        id: current.id.clone(),
                    });
                }
            }
            RunState::Running { .. } => {
                if !self.probes.contains_key(&current.id) {
                    let has_probes = c.liveness_probe.is_some()
                        || c.readiness_probe.is_some()
                        || c.startup_probe.is_some();
                    self.probes.insert(
                        current.id.clone(),
                        ProbeState {
                            ready: c.readiness_probe.is_none(),
                            started: c.startup_probe.is_none(),
                            liveness_failed: false,
                        },
                    );
                    if has_probes {
                        let target_ip = if spec.host_network {
                            "127.0.0.1".to_owned()
                        } else {
                            current
                                .ip_address
                                .clone()
                                .unwrap_or_else(|| "127.0.0.1".to_owned())
                        };
                        self.effects.push(Effect::WatchProbes {
                            container_id: current.id.clone(),
                            container: Box::new(c.clone()),
                            target_ip,
                        });
                    }
                }
                let failed = self
                    .probes
                    .get(&current.id)
                    .is_some_and(|p| p.liveness_failed);
                if (failed || changed) && self.stopping.insert(current.id.clone()) {
                    let why = if failed {
                        "failed liveness probe"
                    } else {
                        "definition changed"
                    };
                    self.event(
                        spec,
                        Some(&c.name),
                        EventType::Normal,
                        "Killing",
                        format!("Container {} {why}, will be restarted", c.name),
                    );
                    self.effects.push(Effect::Stop {
                        id: current.id.clone(),
                        grace,
                    });
                }
            }
            RunState::Exited { error, .. } => {
                if self.probes.remove(&current.id).is_some() {
                    self.effects.push(Effect::UnwatchProbes {
                        container_id: current.id.clone(),
                    });
                }
                self.on_exited(spec, c, &key, &current, changed, error);
            }
        }
    }

    fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
        match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }

    fn on_exited(
        &mut self,
        spec: &Arc<PodSpec>,
        c: &ContainerSpec,
        key: &ContainerKey,
        current: &ContainerSnapshot,
        changed: bool,
        start_error: Option<String>,
    ) {
        let (exit_code, started, finished) = match &current.state {
            RunState::Exited {
                exit_code,
                started_at,
                finished_at,
                ..
            } => (*exit_code, *started_at, *finished_at),
            _ => (128, None, None),
        };
        let exit_code = if start_error.is_some() && exit_code == 0 {
            128
        } else {
            exit_code
        };
        if !changed && !Self::should_restart(spec.restart_policy, exit_code) {
            return;
        }
        let timings = self.timings;
        let now = self.now;
        let restarts = current.identity.restart_count;
        let failed_at = finished.unwrap_or(now);
        let hash = spec_hash(c);
        let Some(m) = self.memory(key) else {
            return;
        };
        if m.restart_decided_for.as_deref() == Some(&current.id) {
            return;
        }
        let backoff = m
            .crash_backoff
            .get_or_insert_with(|| Backoff::from_restarts(restarts, &timings));
        backoff.reset_if_ran_long(started, finished, &timings);
        if !changed && backoff.in_backoff(failed_at, now) {
            let delay = backoff.delay();
            m.crash_wait = delay;
            if m.crash_event_for.as_deref() != Some(&current.id) {
                m.crash_event_for = Some(current.id.clone());
                self.event(
                    spec,
                    Some(&c.name),
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off {} restarting failed container={} pod={}_{}({})",
                        humantime::format_duration(delay),
                        c.name,
                        spec.name,
                        spec.namespace,
                        spec.uid
                    ),
                );
            }
            return;
        }
        backoff.advance(&timings);
        m.restart_decided_for = Some(current.id.clone());
        let next = m.max_restart.unwrap_or(restarts).max(restarts) + 1;
        self.drive(spec, c, key, next, &hash);
    }

    /// Brings up instance `restart_count`: image, then create (start follows `Created`).
    fn drive(
        &mut self,
        spec: &Arc<PodSpec>,
        c: &ContainerSpec,
        key: &ContainerKey,
        restart_count: u32,
        hash: &str,
    ) {
        let now = self.now;
        let Some(m) = self.memory(key) else {
            return;
        };
        m.pipeline = Some(restart_count);
        if let Some((reason, _, at)) = m.failure.clone()
            && m.attempt_backoff.in_backoff(at, now)
        {
            // ErrImagePull is reported first; ImagePullBackOff from the next pass on.
            if is_pull_reason(&reason) && !m.backoff_event_sent && now > at {
                m.backoff_event_sent = true;
                m.failure = Some(("ImagePullBackOff".to_owned(), back_off_pulling(c), at));
                self.event(
                    spec,
                    Some(&c.name),
                    EventType::Normal,
                    "BackOff",
                    back_off_pulling(c),
                );
            }
            return;
        }
        if !m.image_ok {
            m.op = Some(Op::Image);
            self.effects.push(Effect::EnsureImage {
                key: key.clone(),
                image: c.image.clone(),
                policy: c.image_pull_policy,
                credentials: spec.registry_credentials.clone(),
            });
            return;
        }
        m.op = Some(Op::Create);
        m.max_restart = Some(
            m.max_restart
                .map_or(restart_count, |x| x.max(restart_count)),
        );
        self.effects.push(Effect::Create {
            key: key.clone(),
            pod: spec.clone(),
            restart_count,
            spec_hash: hash.to_owned(),
        });
    }

    fn report_changes(&mut self) {
        let mut changed = Vec::new();
        let mut removed_now = Vec::new();
        for (uid, pod) in &self.pods {
            if pod.removed_reported {
                continue;
            }
            let status = self.pod_status(pod);
            if status.removed {
                removed_now.push(uid.clone());
            }
            if self.reported.get(uid) != Some(&status) {
                changed.push(status);
            }
        }
        let mut gone = Vec::new();
        for (uid, (ns, name)) in &self.orphans {
            let status = self.orphan_status(uid, ns, name);
            if status.removed {
                gone.push(uid.clone());
            }
            if self.reported.get(uid) != Some(&status) {
                changed.push(status);
            }
        }
        for uid in removed_now {
            if let Some(p) = self.pods.get_mut(&uid) {
                p.removed_reported = true;
            }
            self.reported.remove(&uid);
        }
        for uid in gone {
            self.orphans.remove(&uid);
            self.reported.remove(&uid);
            self.effects.push(Effect::CleanupPod { pod_uid: uid });
        }
        for s in &changed {
            if !s.removed {
                self.reported.insert(s.uid.clone(), s.clone());
            }
        }
        if !changed.is_empty() {
            self.effects.push(Effect::Report(changed));
        }
    }

    fn orphan_status(&self, uid: &str, ns: &str, name: &str) -> PodStatus {
        let left = self.containers.iter().any(|c| c.identity.pod_uid == uid);
        PodStatus {
            uid: uid.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
            phase: if left {
                PodPhase::Running
            } else {
                PodPhase::Succeeded
            },
            removed: !left,
            ..Default::default()
        }
    }

    fn pod_status(&self, pod: &PodEntry) -> PodStatus {
        let spec = &pod.spec;
        let mut containers = Vec::new();
        let mut pod_ip = None;
        for c in &spec.containers {
            let instances = self.instances(&spec.uid, &c.name);
            let memory = pod.containers.get(&c.name);
            let status = self.container_status(spec, pod, c, &instances, memory);
            if pod_ip.is_none()
                && let Some(cur) = instances.first()
                && matches!(cur.state, RunState::Running { .. })
            {
                pod_ip = if spec.host_network {
                    self.node_ip.clone()
                } else {
                    cur.ip_address.clone()
                };
            }
            containers.push(status);
        }
        let terminating = spec.is_terminating();
        let nothing_left = !self
            .containers
            .iter()
            .any(|c| c.identity.pod_uid == spec.uid);
        let removed = terminating
            && nothing_left
            && !pod.containers.values().any(|m| m.op.is_some())
            && pod.volumes != VolumeState::InFlight;
        if removed {
            for cs in &mut containers {
                if !matches!(cs.state, ContainerState::Terminated { .. }) {
                    cs.last_state = Some(cs.state.clone());
                    cs.state = ContainerState::Terminated {
                        exit_code: 0,
                        signal: None,
                        reason: "Completed".to_owned(),
                        message: None,
                        started_at: None,
                        finished_at: Some(self.now),
                    };
                }
                cs.ready = false;
                cs.started = Some(false);
            }
        }
        let phase = pod_phase(spec.restart_policy, &containers);
        let (reason, message) = match &pod.volumes {
            VolumeState::Failed { message, .. } => (
                Some("FailedMount".to_owned()),
                Some(format!("MountVolume.SetUp failed: {message}")),
            ),
            _ => (None, None),
        };
        PodStatus {
            uid: spec.uid.clone(),
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            phase,
            reason,
            message,
            pod_ip: if removed { None } else { pod_ip },
            start_time: Some(pod.accepted_at),
            containers,
            removed,
        }
    }

    fn container_status(
        &self,
        spec: &PodSpec,
        pod: &PodEntry,
        c: &ContainerSpec,
        instances: &[ContainerSnapshot],
        memory: Option<&ContainerMemory>,
    ) -> ContainerStatus {
        let current = instances.first();
        let terminated = |snap: &ContainerSnapshot| -> Option<ContainerState> {
            match &snap.state {
                RunState::Exited {
                    exit_code,
                    started_at,
                    finished_at,
                    oom_killed,
                    error,
                } => {
                    let start_error = self.start_failed.get(&snap.id).or(error.as_ref());
                    let reason = if *oom_killed {
                        "OOMKilled"
                    } else if start_error.is_some() {
                        "StartError"
                    } else if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    };
                    Some(ContainerState::Terminated {
                        exit_code: *exit_code,
                        signal: None,
                        reason: reason.to_owned(),
                        message: start_error.cloned(),
                        started_at: *started_at,
                        finished_at: *finished_at,
                    })
                }
                RunState::Created => {
                    self.start_failed
                        .get(&snap.id)
                        .map(|message| ContainerState::Terminated {
                            exit_code: 128,
                            signal: None,
                            reason: "StartError".to_owned(),
                            message: Some(message.clone()),
                            started_at: None,
                            finished_at: None,
                        })
                }
                RunState::Running { .. } => None,
            }
        };
        let waiting = |reason: &str, message: Option<String>| ContainerState::Waiting {
            reason: reason.to_owned(),
            message,
        };
        let failure = memory.and_then(|m| m.failure.clone());
        let mut last_state = instances.get(1).and_then(terminated);
        let mut ready = false;
        let mut started = Some(false);
        let state = match current {
            None => match (&pod.volumes, failure) {
                (VolumeState::Failed { message, .. }, _) => {
                    waiting("CreateContainerConfigError", Some(message.clone()))
                }
                (_, Some((reason, message, _))) => waiting(&reason, Some(message)),
                _ => waiting("ContainerCreating", None),
            },
            Some(cur) => match &cur.state {
                RunState::Running { started_at } => {
                    let probe = self.probes.get(&cur.id);
                    ready = probe.is_none_or(|p| p.ready && p.started);
                    started = Some(probe.is_none_or(|p| p.started));
                    ContainerState::Running {
                        started_at: *started_at,
                    }
                }
                RunState::Created if !self.start_failed.contains_key(&cur.id) => {
                    waiting("ContainerCreating", None)
                }
                _ => {
                    let term = terminated(cur).unwrap_or_default();
                    let exit_code = match &term {
                        ContainerState::Terminated { exit_code, .. } => *exit_code,
                        _ => 0,
                    };
                    let changed = !cur.identity.spec_hash.is_empty()
                        && cur.identity.spec_hash != spec_hash(c);
                    let restarting =
                        changed || Self::should_restart(spec.restart_policy, exit_code);
                    if restarting && !spec.is_terminating() {
                        last_state = Some(term);
                        match (memory, failure) {
                            (Some(m), Some((reason, message, _))) if m.pipeline.is_some() => {
                                waiting(&reason, Some(message))
                            }
                            (Some(m), _) if m.pipeline.is_some() => {
                                waiting("ContainerCreating", None)
                            }
                            _ => waiting(
                                "CrashLoopBackOff",
                                Some(format!(
                                    "back-off {} restarting failed container={} pod={}_{}({})",
                                    humantime::format_duration(
                                        memory
                                            .map(|m| m.crash_wait)
                                            .filter(|w| !w.is_zero())
                                            .unwrap_or_else(|| Backoff::from_restarts(
                                                cur.identity.restart_count,
                                                &self.timings
                                            )
                                            .delay())
                                    ),
                                    c.name,
                                    spec.name,
                                    spec.namespace,
                                    spec.uid
                                )),
                            ),
                        }
                    } else {
                        term
                    }
                }
            },
        };
        ContainerStatus {
            name: c.name.clone(),
            state,
            last_state,
            ready,
            started,
            restart_count: current.map_or(0, |c| c.identity.restart_count),
            image: c.image.clone(),
            image_id: current.map(|c| c.image_id.clone()).unwrap_or_default(),
            container_id: current.map(|c| format!("docker://{}", c.id)),
        }
    }
}

fn spec_hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is_pull_reason(reason: &str) -> bool {
    matches!(reason, "ErrImagePull" | "ImagePullBackOff")
}

fn back_off_pulling(c: &ContainerSpec) -> String {
    format!("Back-off pulling image \"{}\"", c.image)
}

/// The kubelet's pod phase from container states.
pub fn pod_phase(policy: RestartPolicy, containers: &[ContainerStatus]) -> PodPhase {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } => {
                if matches!(c.last_state, Some(ContainerState::Terminated { .. })) {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 {
        PodPhase::Pending
    } else if running > 0 {
        PodPhase::Running
    } else if stopped > 0 {
        if policy == RestartPolicy::Always {
            PodPhase::Running
        } else if stopped == succeeded {
            PodPhase::Succeeded
        } else if policy == RestartPolicy::Never {
            PodPhase::Failed
        } else {
            PodPhase::Running
        }
    } else {
        PodPhase::Pending
    }
}
