//! The fleet: every device's registry entry, sync state and pods, in one place.
//!
//! Inputs come from the MQTT link (device messages), the pod watch (translated pods),
//! the Kubernetes writers (feedback) and a ticker (liveness, leases, node status).
//! Each input locks the state briefly, runs the pure logic, and queues effects:
//! Kubernetes writes to [`KubeOps`], MQTT messages to the outbox (whose task flushes the
//! store before sending a desired set).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use edge_protocol::{
    DesiredSet, DeviceId, DeviceState, Heartbeat, LogCancel, LogRequest, Message, NodeReport,
    PodEventReport, PodPhase, PodStatusReport, RequestId, ResyncRequest, Topic, UpChannel,
};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::mpsc;
use tracing::{info, warn};

mod node_claim;

use crate::device_sync::{DeviceSync, ReportedPod, SyncEffect, SyncInput};
use crate::health::Health;
use crate::hostile_input::RejectionLog;
use crate::kube_writer::{
    EventPod, EventReason, EventType, KubeFeedback, KubeOp, KubeOps, node_event, node_status,
};
use crate::log_streams::LogStreams;
use crate::metrics::Metrics;
use crate::node_object::{NodeSettings, device_internal_ip};
use crate::status_mapping::{config_error_status, kube_pod_status, now_time, time_from_millis};
use crate::store::Store;
use crate::translation::{NodeContext, Translation, TranslationError};
use node_claim::{NodeClaim, REFUSAL_RECHECK};

/// Messages for the MQTT outbox task.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// Flush the store, then publish the desired set.
    Desired {
        device: DeviceId,
        set: DesiredSet,
    },
    LogRequest {
        device: DeviceId,
        id: RequestId,
        request: LogRequest,
    },
    LogCancel {
        device: DeviceId,
        id: RequestId,
    },
    /// Ask the device for a full status report.
    StatusResync {
        device: DeviceId,
        reason: String,
    },
}

/// Requests to the pod watch.
#[derive(Debug, Clone)]
pub enum PodWatchRequest {
    /// A device became known: translate its pods and report them synced.
    AdoptNode(DeviceId),
}

/// Fleet-wide timings and policies.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub node: NodeSettings,
    pub device_timeout: Duration,
    pub lease_renew: Duration,
    pub node_status_interval: Duration,
    pub allow_devices: BTreeSet<String>,
    pub store_dir: std::path::PathBuf,
    pub rejection_log_window: Duration,
}

impl FleetSettings {
    /// The defaults of a local gateway (`GatewayConfig::local`'s timings, provider
    /// `edge` with its taint, node address 127.0.0.1) over `store_dir`: for tests,
    /// harnesses and the fuzz target.
    pub fn local(store_dir: &std::path::Path) -> Self {
        Self {
            node: NodeSettings {
                provider: "edge".into(),
                taint: true,
                node_address: "127.0.0.1".into(),
                kubelet_port: 10250,
            },
            device_timeout: Duration::from_secs(40),
            lease_renew: Duration::from_secs(10),
            node_status_interval: Duration::from_secs(60),
            allow_devices: BTreeSet::new(),
            store_dir: store_dir.to_owned(),
            rejection_log_window: Duration::from_secs(60),
        }
    }
}

/// Why a log request cannot be served (mapped to HTTP errors by the kubelet API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogTargetError {
    #[error("pod {namespace}/{name} is not running on any node of this gateway")]
    PodNotFound { namespace: String, name: String },
    #[error("container {container:?} is not valid for pod {name}")]
    ContainerNotFound { name: String, container: String },
    #[error("node {0} is offline: its device is not connected, so its logs cannot be read now")]
    DeviceOffline(String),
}

#[derive(Debug)]
struct DeviceEntry {
    sync: DeviceSync,
    report: Option<NodeReport>,
    state_online: Option<bool>,
    last_seen: Option<Instant>,
    online: bool,
    ready_since: Option<Time>,
    node_registered: bool,
    node_uid: Option<String>,
    node_pending: bool,
    last_lease: Option<Instant>,
    last_node_status: Option<Instant>,
    node_dirty: bool,
    last_status_sequence: Option<u64>,
    /// Full status reports asked for (one each time the device comes online).
    status_resyncs: u64,
    /// A report named pods of the device's desired set before the pod watch had handed
    /// them over (right after a gateway start): their status is asked for again once the
    /// watch has.
    reported_before_pods: bool,
    /// Labels of the hello last applied to the Node (to remove ones the device dropped).
    applied_labels: Option<BTreeMap<String, String>>,
    /// Whether the Node with this device's name is ours to manage.
    claim: NodeClaim,
    /// Whether the pod watch was asked to hand over this device's pods.
    adopted: bool,
    /// A store write of this device's desired set failed: nothing is sent to the device
    /// until the set is stored again (retried every tick).
    persist_failed: bool,
}

impl DeviceEntry {
    fn new(sync: DeviceSync, report: Option<NodeReport>, claim: NodeClaim) -> Self {
        Self {
            sync,
            report,
            state_online: None,
            last_seen: None,
            online: false,
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
}

#[derive(Debug)]
struct PodEntry {
    pod: Arc<Pod>,
    device: DeviceId,
    last_patched: Option<PodStatus>,
    phase: Option<String>,
    desired_at: Option<Instant>,
    failure: Option<String>,
}

#[derive(Debug, Default)]
struct FleetState {
    devices: HashMap<DeviceId, DeviceEntry>,
    pods: HashMap<String, PodEntry>,
    by_name: HashMap<(String, String), String>,
}

/// The fleet and its effect queues.
#[derive(Debug)]
pub struct Fleet {
    settings: FleetSettings,
    state: Mutex<FleetState>,
    store: Store,
    metrics: Arc<Metrics>,
    ops: KubeOps,
    outbox: mpsc::UnboundedSender<Outgoing>,
    pod_watch: mpsc::UnboundedSender<PodWatchRequest>,
    logs: LogStreams,
    rejections: Mutex<RejectionLog>,
    /// When each unknown device was last asked to introduce itself (see
    /// [`Fleet::unknown_device`]); its own lock, as it is used while `state` is held.
    introductions: Mutex<HashMap<DeviceId, Instant>>,
    /// Checked at every message and every tick; re-read only when the file changes.
    revocations: crate::enrollment::CachedRevocationList,
    health: Arc<Health>,
}

/// How often an unknown device is asked, at most, to send its node report again.
const INTRODUCTION_INTERVAL: Duration = Duration::from_secs(30);
/// Bound on remembered unknown ids, so a client inventing ids cannot grow memory.
const MAX_REMEMBERED_INTRODUCTIONS: usize = 100_000;

fn kind_label(msg: &Message) -> &'static str {
    msg.kind().as_str()
}

impl Fleet {
    /// Restores every stored device (offline until it is heard from).
    pub fn new(
        settings: FleetSettings,
        store: Store,
        metrics: Arc<Metrics>,
        ops: KubeOps,
        outbox: mpsc::UnboundedSender<Outgoing>,
        pod_watch: mpsc::UnboundedSender<PodWatchRequest>,
    ) -> Self {
        let mut state = FleetState::default();
        let reports = store.load_reports();
        for record in store.load_devices() {
            match record {
                Ok((device, persisted)) => {
                    let report = reports.get(&device).cloned();
                    let sync = DeviceSync::restore(device.clone(), persisted);
                    // stored devices were confirmed by an earlier run; their next hello
                    // checks the Node again
                    let entry = DeviceEntry::new(sync, report, NodeClaim::Owned);
                    state.devices.insert(device, entry);
                }
                Err(e) => warn!(error = %e, "skipping a stored device record"),
            }
        }
        metrics.devices_total.set(state.devices.len() as i64);
        let window = settings.rejection_log_window;
        let store_dir = settings.store_dir.clone();
        Self {
            settings,
            state: Mutex::new(state),
            store,
            metrics,
            ops,
            outbox,
            pod_watch,
            logs: LogStreams::default(),
            rejections: Mutex::new(RejectionLog::new(window)),
            introductions: Mutex::new(HashMap::new()),
            revocations: crate::enrollment::CachedRevocationList::new(store_dir),
            health: Arc::new(Health::default()),
        }
    }

    /// Readiness, shared with the outbox and the `/readyz` endpoint.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    fn lock(&self) -> MutexGuard<'_, FleetState> {
        // A panic while holding the lock would be a bug; keep serving with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn logs(&self) -> &LogStreams {
        &self.logs
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts, logs (rate limited per source) and drops a bad message.
    pub fn reject(&self, source: &str, reason: &'static str, detail: &str) {
        self.metrics.rejected(reason);
        let log = self
            .rejections
            .lock()
            .map(|mut r| r.should_log(source, Instant::now()))
            .unwrap_or(false);
        if log {
            warn!(
                source,
                reason,
                detail,
                "dropped a message (further ones from this source are counted, not logged, for a while)"
            );
        }
    }

    /// Whether pods bound to `node` are ours: a device whose Node the gateway manages.
    pub fn is_known(&self, node: &str) -> bool {
        DeviceId::new(node)
            .map(|d| {
                self.lock()
                    .devices
                    .get(&d)
                    .is_some_and(|e| e.claim.is_owned())
            })
            .unwrap_or(false)
    }

    pub fn known_devices(&self) -> Vec<DeviceId> {
        self.lock().devices.keys().cloned().collect()
    }

    /// Downward-API facts about a device's node.
    pub fn node_context(&self, device: &DeviceId) -> NodeContext {
        let state = self.lock();
        let report = state.devices.get(device).and_then(|e| e.report.as_ref());
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
        }
    }

    /// Executes a device's sync effects in order, under the fleet lock (so a newer
    /// record is never overwritten by an older one executed later).
    fn apply(&self, state: &mut FleetState, device: &DeviceId, effects: Vec<SyncEffect>) {
        for effect in effects {
            match effect {
                SyncEffect::Persist(record) => {
                    if let Err(e) = self.store.put_device(device, &record) {
                        warn!(%device, error = %e, "cannot store the desired set; nothing is sent to the device until it is stored");
                        self.health.store_failed(&e.to_string());
                        if let Some(entry) = state.devices.get_mut(device) {
                            entry.persist_failed = true;
                        }
                    }
                }
                SyncEffect::Publish(set) => {
                    // never promise a device more than the store holds
                    if state.devices.get(device).is_some_and(|e| e.persist_failed) {
                        continue;
                    }
                    let _ = self.outbox.send(Outgoing::Desired {
                        device: device.clone(),
                        set,
                    });
                }
                SyncEffect::DeletePod {
                    uid,
                    namespace,
                    name,
                } => self.ops.send(KubeOp::DeletePod {
                    device: device.clone(),
                    namespace,
                    name,
                    uid,
                }),
                SyncEffect::Refused {
                    uid,
                    new_pod,
                    size,
                    limit,
                    ..
                } => self.refuse_pod(state, device, &uid, new_pod, size, limit),
            }
        }
    }

    /// A pod that does not fit the device's desired set: a new one is rejected the way
    /// the kubelet rejects a pod it cannot admit (phase Failed, a Warning Event); a
    /// change of a running one is not delivered (Warning Event; the device keeps the
    /// previous spec).
    fn refuse_pod(
        &self,
        state: &mut FleetState,
        device: &DeviceId,
        uid: &str,
        new_pod: bool,
        size: usize,
        limit: usize,
    ) {
        let Some(pod_entry) = state.pods.get_mut(uid) else {
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
        let meta = &pod_entry.pod.metadata;
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        warn!(%device, pod = %format!("{ns}/{name}"), size, limit, new_pod, "pod does not fit the device's desired set");
        let kube_now = now_time(jiff::Timestamp::now());
        let reason = EventReason::DesiredSetTooLarge;
        let text = if new_pod {
            format!("Pod was rejected: {message}")
        } else {
            format!(
                "Pod update not delivered (the device keeps running the previous spec): {message}"
            )
        };
        self.ops.send(KubeOp::RecordEvent {
            device: device.clone(),
            event: Box::new(
                EventPod {
                    node: device.as_str(),
                    namespace: &ns,
                    name: &name,
                    uid,
                }
                .warning(reason.clone(), &text, kube_now)
                .build(),
            ),
        });
        if new_pod {
            let status =
                crate::status_mapping::rejected_status(&pod_entry.pod, reason.as_str(), &text);
            self.metrics
                .pod_phase_changed(pod_entry.phase.as_deref(), Some("Failed"));
            pod_entry.phase = Some("Failed".to_owned());
            pod_entry.last_patched = Some(status.clone());
            self.ops.send(KubeOp::PatchPodStatus {
                device: device.clone(),
                namespace: ns,
                name,
                uid: uid.to_owned(),
                status: Box::new(status),
            });
        }
    }

    // ---- MQTT input ------------------------------------------------------------

    /// Handles one message from the broker. `retained` is the MQTT retain flag.
    pub fn on_mqtt(&self, topic: &str, payload: &[u8], retained: bool) {
        let parsed = match Topic::parse(topic) {
            Ok(t) => t,
            Err(e) => return self.reject(topic, "bad_topic", &e.to_string()),
        };
        let Topic::Up { device, channel } = parsed.clone() else {
            return self.reject(
                topic,
                "unexpected_direction",
                "gateway only reads up/ topics",
            );
        };
        let msg = match Message::decode_on(&parsed, payload) {
            Ok(m) => m,
            Err(e) => {
                let reason = match e {
                    edge_protocol::DecodeError::TooLarge { .. } => "oversized",
                    edge_protocol::DecodeError::UnsupportedVersion { .. }
                    | edge_protocol::DecodeError::BadVersion(_)
                    | edge_protocol::DecodeError::MissingVersion => "wrong_version",
                    edge_protocol::DecodeError::WrongTopic { .. } => "wrong_topic",
                    _ => "malformed",
                };
                return self.reject(device.as_str(), reason, &e.to_string());
            }
        };
        self.metrics.message_in(kind_label(&msg));
        // revocation holds for every message, not only hellos (refused in on_hello): a
        // revoked device that is still connected (an external broker without a fresh CRL, the embedded broker)
        // is forgotten and gets nothing more
        if channel != UpChannel::Hello && matches!(self.revocations.contains(&device), Ok(true)) {
            self.reject(device.as_str(), "revoked", "message from a revoked device");
            return self.retire(&device, "its certificate was revoked");
        }
        match (channel, msg) {
            (UpChannel::Hello, Message::NodeReport(r)) => self.on_hello(&device, r),
            (UpChannel::Heartbeat, Message::Heartbeat(h)) => self.on_heartbeat(&device, h),
            (UpChannel::State, Message::DeviceState(s)) => self.on_state(&device, s, retained),
            (UpChannel::Status, Message::PodStatusReport(r)) => self.on_status(&device, r),
            (UpChannel::Events, Message::PodEventReport(r)) => self.on_events(&device, r),
            (UpChannel::Resync, Message::ResyncRequest(r)) => self.on_resync(&device, r),
            (UpChannel::Logs(id), Message::LogChunk(c)) => {
                if let Err(e) = self.logs.deliver(&device, &id, c) {
                    let reason = match e {
                        crate::log_streams::DeliveryError::WrongDevice => "spoofed",
                        crate::log_streams::DeliveryError::Overflow => "log_overflow",
                        crate::log_streams::DeliveryError::Oversized => "oversized",
                        crate::log_streams::DeliveryError::UnknownRequest => "unknown_log_request",
                    };
                    if reason != "unknown_log_request" {
                        self.reject(
                            device.as_str(),
                            reason,
                            &format!("log chunk for request {id}"),
                        );
                    }
                }
            }
            (_, other) => self.reject(device.as_str(), "wrong_topic", other.kind().as_str()),
        }
    }

    fn admitted(&self, device: &DeviceId) -> Result<(), String> {
        if !self.settings.allow_devices.is_empty()
            && !self.settings.allow_devices.contains(device.as_str())
        {
            return Err("device is not in --allow-device".to_owned());
        }
        match self.revocations.contains(device) {
            Ok(true) => Err("device is revoked".to_owned()),
            Ok(false) => Ok(()),
            Err(e) => {
                warn!(error = %e, "cannot read the revocation list; refusing hellos until it is fixed");
                Err(format!("revocation list unreadable: {e}"))
            }
        }
    }

    fn on_hello(&self, device: &DeviceId, report: NodeReport) {
        if let Err(why) = self.admitted(device) {
            return self.reject(device.as_str(), "not_admitted", &why);
        }
        let report = match crate::node_resources::checked_report(report) {
            Ok((report, dropped)) => {
                for d in dropped {
                    self.reject(
                        device.as_str(),
                        "bad_resource",
                        &format!("extended resource {:?} left out: {}", d.name, d.why),
                    );
                }
                report
            }
            Err(e) => return self.reject(device.as_str(), "bad_capacity", &e.to_string()),
        };
        let now = Instant::now();
        let mut is_new = false;
        {
            let mut state = self.lock();
            let entry = state.devices.entry(device.clone()).or_insert_with(|| {
                is_new = true;
                DeviceEntry::new(
                    DeviceSync::new(device.clone()),
                    None,
                    NodeClaim::Unconfirmed,
                )
            });
            if !entry.claim.may_upsert(now) {
                drop(state);
                return self.reject(
                    device.as_str(),
                    "node_not_owned",
                    "a Node with this device's name exists and is not managed by edge-gateway",
                );
            }
            if let NodeClaim::Refused { .. } = entry.claim {
                entry.claim = NodeClaim::Unconfirmed;
            }
            if let Some(old) = entry.report.replace(report.clone()) {
                entry
                    .applied_labels
                    .get_or_insert_with(|| crate::node_object::node_labels(device, &old).0);
            }
            entry.last_seen = Some(now);
            // a hello starts a new agent session: accept its report sequence afresh
            entry.last_status_sequence = None;
            entry.node_dirty = true;
            entry.node_registered = false;
            let count = state.devices.len();
            self.metrics.devices_total.set(count as i64);
        }
        if let Err(e) = self.store.put_report(device, &report) {
            warn!(%device, error = %e, "cannot store the node report");
            self.health.store_failed(&e.to_string());
        }
        if is_new {
            // its pods are adopted once its Node is confirmed as ours
            info!(%device, "new device");
        }
        self.evaluate(device, now);
    }

    fn on_heartbeat(&self, device: &DeviceId, hb: Heartbeat) {
        self.heard_with(
            device,
            SyncInput::Heartbeat {
                observed_generation: hb.observed_generation,
            },
        );
    }

    /// A device was heard from with something for its desired-set sync.
    fn heard_with(&self, device: &DeviceId, input: SyncInput) {
        let now = Instant::now();
        {
            let mut state = self.lock();
            let Some(entry) = state.devices.get_mut(device) else {
                drop(state);
                return self.unknown_device(device);
            };
            entry.last_seen = Some(now);
            let effects = entry.sync.handle(input);
            self.apply(&mut state, device, effects);
        }
        self.evaluate(device, now);
    }

    /// A message from a device that has not said hello (yet): common right after the
    /// gateway or the device starts (a heartbeat can overtake the hello), so counted and
    /// logged at debug level only.
    ///
    /// A connected device the gateway does not know (its store was lost, or it started
    /// while devices stayed connected to an external broker) is asked, at most every
    /// [`INTRODUCTION_INTERVAL`], for a resync: the agent answers with its node report
    /// and a full status report. Must not take the `state` lock (callers hold it).
    fn unknown_device(&self, device: &DeviceId) {
        self.metrics.rejected("unknown_device");
        let now = Instant::now();
        {
            let mut asked = self.introductions.lock().unwrap_or_else(|p| p.into_inner());
            if asked
                .get(device)
                .is_some_and(|t| now.duration_since(*t) < INTRODUCTION_INTERVAL)
            {
                return;
            }
            if asked.len() >= MAX_REMEMBERED_INTRODUCTIONS {
                asked.clear();
            }
            asked.insert(device.clone(), now);
        }
        if self.admitted(device).is_err() {
            return;
        }
        tracing::debug!(%device, "message from a device that has not said hello; asking it to introduce itself");
        self.send(Outgoing::StatusResync {
            device: device.clone(),
            reason: "unknown device: send your node report".to_owned(),
        });
    }

    fn on_state(&self, device: &DeviceId, s: DeviceState, retained: bool) {
        let now = Instant::now();
        {
            let mut state = self.lock();
            let Some(entry) = state.devices.get_mut(device) else {
                if s.online {
                    self.unknown_device(device);
                }
                return;
            };
            entry.state_online = Some(s.online);
            if s.online && !retained {
                entry.last_seen = Some(now);
            }
        }
        self.evaluate(device, now);
    }

    fn on_resync(&self, device: &DeviceId, r: ResyncRequest) {
        self.heard_with(
            device,
            SyncInput::ResyncRequested {
                known_generation: r.known_generation,
            },
        );
    }

    fn on_status(&self, device: &DeviceId, report: PodStatusReport) {
        let now = Instant::now();
        let kube_now = now_time(jiff::Timestamp::now());
        let mut ops = Vec::new();
        let mut spoofed = Vec::new();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            let Some(entry) = state.devices.get_mut(device) else {
                drop(guard);
                return self.unknown_device(device);
            };
            entry.last_seen = Some(now);
            // Read by the fault-injection tests (hil-tests/tests/fault_injection.rs).
            tracing::debug!(%device, sequence = report.sequence, full = report.full, "status report received");
            if let Some(last) = entry.last_status_sequence {
                if !report.full && report.sequence <= last && last - report.sequence < 1_000_000 {
                    return; // duplicate or reordered delivery of an older report
                }
            }
            entry.last_status_sequence = Some(report.sequence);
            let host_ip = entry.report.as_ref().and_then(device_internal_ip);
            for reported in &report.pods {
                // isolation: only pods in this device's desired set
                if !entry.sync.has_pod(&reported.uid) {
                    continue;
                }
                let Some(pod_entry) = state.pods.get_mut(&reported.uid) else {
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
                let status =
                    kube_pod_status(&pod_entry.pod, reported, host_ip.as_deref(), &kube_now);
                // Skip only when both what we last wrote and what the API holds now
                // already say this (the node lifecycle controller, for one, sets Ready
                // to False while a node is unreachable: the device's status must win).
                let new = strip_times(&status);
                let api_now = pod_entry.pod.status.as_ref().map(strip_times);
                if pod_entry.last_patched.as_ref().map(strip_times).as_ref() == Some(&new)
                    && api_now.as_ref() == Some(&new)
                {
                    continue;
                }
                let phase = status.phase.clone();
                self.metrics
                    .pod_phase_changed(pod_entry.phase.as_deref(), phase.as_deref());
                pod_entry.phase = phase;
                if reported.phase == PodPhase::Running {
                    if let Some(t) = pod_entry.desired_at.take() {
                        self.metrics
                            .desired_to_running_seconds
                            .observe(now.duration_since(t).as_secs_f64());
                    }
                }
                pod_entry.last_patched = Some(status.clone());
                pod_entry.failure = None;
                let meta = &pod_entry.pod.metadata;
                ops.push(KubeOp::PatchPodStatus {
                    device: device.clone(),
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                    uid: reported.uid.clone(),
                    status: Box::new(status),
                });
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
            for op in ops.drain(..) {
                self.ops.send(op);
            }
            self.apply(state, device, effects);
        }
        for uid in spoofed {
            self.reject(
                device.as_str(),
                "spoofed",
                &format!("status for pod {uid} of another node"),
            );
        }
        self.evaluate(device, now);
    }

    fn on_events(&self, device: &DeviceId, report: PodEventReport) {
        let mut ops = Vec::new();
        {
            let state = self.lock();
            let Some(entry) = state.devices.get(device) else {
                drop(state);
                return self.unknown_device(device);
            };
            for e in &report.events {
                let Some(spec) = entry.sync.pod(&e.pod_uid) else {
                    continue;
                };
                let container = e
                    .container
                    .as_deref()
                    .filter(|c| spec.containers.iter().any(|s| s.name == *c));
                let reason = EventReason::Reported(e.reason.chars().take(128).collect());
                let message: String = e.message.chars().take(1024).collect();
                let at = if e.timestamp > 0 {
                    time_from_millis(e.timestamp)
                } else {
                    now_time(jiff::Timestamp::now())
                };
                ops.push(KubeOp::RecordEvent {
                    device: device.clone(),
                    event: Box::new(
                        EventPod {
                            node: device.as_str(),
                            namespace: &spec.namespace,
                            name: &spec.name,
                            uid: &spec.uid,
                        }
                        .event(e.event_type, reason, &message, at)
                        .container(container)
                        .count(i32::try_from(e.count).unwrap_or(i32::MAX))
                        .build(),
                    ),
                });
            }
        }
        for op in ops {
            self.ops.send(op);
        }
    }

    // ---- liveness, leases, node status ---------------------------------------------

    /// Re-evaluates one device's liveness and whether its lease or node status is due.
    pub fn evaluate(&self, device: &DeviceId, now: Instant) {
        let mut ops = Vec::new();
        let mut effects = Vec::new();
        let mut went_offline = false;
        let mut resync = false;
        {
            let mut state = self.lock();
            let Some(entry) = state.devices.get_mut(device) else {
                return;
            };
            let fresh = entry
                .last_seen
                .is_some_and(|t| now.saturating_duration_since(t) < self.settings.device_timeout);
            let online = fresh && entry.state_online != Some(false) && entry.report.is_some();
            if online != entry.online {
                entry.online = online;
                if online {
                    info!(%device, "device online");
                    entry.ready_since = Some(now_time(jiff::Timestamp::now()));
                    entry.node_dirty = true;
                    self.metrics.devices_online.inc();
                    effects = entry.sync.handle(SyncInput::Online);
                    // learn what the device runs now (it may have changed while it or
                    // the gateway was away, and the node lifecycle controller marks
                    // pods not ready meanwhile) so pod status is current again
                    entry.status_resyncs += 1;
                    resync = true;
                } else {
                    info!(%device, "device offline: its lease is no longer renewed");
                    self.metrics.devices_online.dec();
                    effects = entry.sync.handle(SyncInput::Offline);
                    went_offline = true;
                }
            }
            if entry.online && entry.report.is_some() {
                let upsert =
                    !entry.node_registered && !entry.node_pending && entry.claim.may_upsert(now);
                let status_due = entry.node_registered
                    && (entry.node_dirty
                        || entry.last_node_status.is_none_or(|t| {
                            now.saturating_duration_since(t) >= self.settings.node_status_interval
                        }));
                let lease_due = entry.node_registered
                    && entry.last_lease.is_none_or(|t| {
                        now.saturating_duration_since(t) >= self.settings.lease_renew
                    });
                if upsert || status_due {
                    let kube_now = now_time(jiff::Timestamp::now());
                    let ready_since = entry
                        .ready_since
                        .clone()
                        .unwrap_or_else(|| kube_now.clone());
                    if let Some(report) = entry.report.clone() {
                        let status = Box::new(node_status(
                            &report,
                            &self.settings.node,
                            kube_now.clone(),
                            ready_since,
                        ));
                        entry.node_dirty = false;
                        entry.last_node_status = Some(now);
                        if upsert {
                            entry.node_pending = true;
                            ops.push(KubeOp::UpsertNode {
                                device: device.clone(),
                                report: Box::new(report),
                                // kept until the Node is registered: a failed
                                // attempt is retried with them
                                previous_labels: entry.applied_labels.clone(),
                                status,
                                now: kube_now,
                            });
                        } else {
                            ops.push(KubeOp::PatchNodeStatus {
                                device: device.clone(),
                                status,
                            });
                        }
                    }
                }
                if lease_due {
                    entry.last_lease = Some(now);
                    ops.push(KubeOp::RenewLease {
                        device: device.clone(),
                        node_uid: entry.node_uid.clone(),
                        duration_seconds: i32::try_from(
                            self.settings.device_timeout.as_secs().max(1),
                        )
                        .unwrap_or(40),
                    });
                }
            }
            for op in ops.drain(..) {
                self.ops.send(op);
            }
            self.apply(&mut state, device, std::mem::take(&mut effects));
        }
        if went_offline {
            // end the kubelet API's streams (follow included) and tell the device to
            // stop them: it gets the cancels from its session when it is back
            for id in self.logs.close_device(device) {
                self.send(Outgoing::LogCancel {
                    device: device.clone(),
                    id,
                });
            }
        }
        if resync {
            self.send(Outgoing::StatusResync {
                device: device.clone(),
                reason: "gateway start".to_owned(),
            });
        }
    }

    /// Periodic pass over every device: liveness, leases, node status; devices revoked
    /// since; desired sets held back by a failing store.
    pub fn tick(&self) {
        let now = Instant::now();
        let devices = self.known_devices();
        if let Ok(revoked) = self.revocations.current() {
            for device in devices.iter().filter(|d| revoked.contains(d)) {
                self.retire(device, "its certificate was revoked");
            }
        }
        self.retry_held_back_sets();
        // (evaluating a device retired above finds no entry and does nothing)
        for device in &devices {
            self.evaluate(device, now);
        }
    }

    /// The broker answered a reconnect without our session: what it had not yet
    /// delivered is gone, so every desired set a device has not acknowledged is sent
    /// again (a device's own resync request may have been lost with the session too).
    pub fn on_broker_session_lost(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let devices: Vec<DeviceId> = state.devices.keys().cloned().collect();
        for device in devices {
            if let Some(entry) = state.devices.get_mut(&device) {
                let effects = entry.sync.handle(SyncInput::BrokerSessionLost);
                self.apply(state, &device, effects);
            }
        }
    }

    /// Stores (and then sends) the desired sets whose store write failed.
    fn retry_held_back_sets(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let failed: Vec<DeviceId> = state
            .devices
            .iter()
            .filter(|(_, e)| e.persist_failed)
            .map(|(d, _)| d.clone())
            .collect();
        for device in failed {
            let Some(entry) = state.devices.get_mut(&device) else {
                continue;
            };
            entry.persist_failed = false;
            let effects = entry.sync.handle(SyncInput::StoreRecovered);
            self.apply(state, &device, effects);
            if state.devices.get(&device).is_some_and(|e| e.persist_failed) {
                break; // still failing: try the others next tick
            }
        }
    }

    /// Forgets a device for good (revoked, or its Node is not ours): its pods and
    /// desired set are dropped, nothing more is sent to it, its Node is left to expire.
    fn retire(&self, device: &DeviceId, why: &str) {
        let online = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let Some(entry) = state.devices.remove(device) else {
                return;
            };
            let count = state.devices.len();
            self.metrics.devices_total.set(count as i64);
            Self::forget_pods_of(state, device, &self.metrics);
            entry.online
        };
        if online {
            self.metrics.devices_online.dec();
        }
        warn!(%device, why, "device retired: its pods and desired set are dropped and its Node no longer renewed");
        self.logs.close_device(device);
        if let Err(e) = self.store.remove_device(device) {
            warn!(%device, error = %e, "cannot remove the retired device from the store");
            self.health.store_failed(&e.to_string());
        }
        let message = format!("edge-gateway no longer serves device {device}: {why}");
        self.ops.send(KubeOp::RecordEvent {
            device: device.clone(),
            event: Box::new(node_event(
                device.as_str(),
                EventType::Warning,
                EventReason::DeviceRetired,
                &message,
                now_time(jiff::Timestamp::now()),
            )),
        });
    }

    /// Drops the fleet's record of every pod bound to `device`.
    fn forget_pods_of(state: &mut FleetState, device: &DeviceId, metrics: &Metrics) {
        let uids: Vec<String> = state
            .pods
            .iter()
            .filter(|(_, p)| &p.device == device)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in uids {
            if let Some(p) = state.pods.remove(&uid) {
                metrics.pod_phase_changed(p.phase.as_deref(), None);
                let key = (
                    p.pod.metadata.namespace.clone().unwrap_or_default(),
                    p.pod.metadata.name.clone().unwrap_or_default(),
                );
                if state.by_name.get(&key) == Some(&uid) {
                    state.by_name.remove(&key);
                }
            }
        }
    }

    /// Results of Kubernetes writes.
    pub fn on_feedback(&self, feedback: KubeFeedback) {
        match feedback {
            KubeFeedback::NodeRegistered { device, uid } => {
                let mut adopt = false;
                {
                    let mut state = self.lock();
                    if let Some(e) = state.devices.get_mut(&device) {
                        e.node_registered = true;
                        e.node_pending = false;
                        e.node_uid = uid.or(e.node_uid.take());
                        e.last_lease = None;
                        e.claim = NodeClaim::Owned;
                        e.applied_labels = None;
                        adopt = !std::mem::replace(&mut e.adopted, true);
                    }
                }
                if adopt {
                    let _ = self
                        .pod_watch
                        .send(PodWatchRequest::AdoptNode(device.clone()));
                }
                self.evaluate(&device, Instant::now());
            }
            KubeFeedback::NodeRefused { device, why } => {
                {
                    let mut guard = self.lock();
                    let state = &mut *guard;
                    let Some(e) = state.devices.get_mut(&device) else {
                        return;
                    };
                    e.node_registered = false;
                    e.node_pending = false;
                    e.claim = NodeClaim::Refused {
                        recheck_at: Instant::now() + REFUSAL_RECHECK,
                    };
                    e.adopted = false;
                    // a restored device whose name now belongs to another Node: nothing
                    // it had is delivered any more
                    e.sync = DeviceSync::new(device.clone());
                    Self::forget_pods_of(state, &device, &self.metrics);
                }
                if let Err(e) = self.store.remove_device(&device) {
                    warn!(%device, error = %e, "cannot remove a refused device from the store");
                }
                self.reject(device.as_str(), "node_not_owned", &why);
            }
            KubeFeedback::NodeFailed { device } => {
                let mut state = self.lock();
                if let Some(e) = state.devices.get_mut(&device) {
                    e.node_registered = false;
                    e.node_pending = false;
                }
            }
            KubeFeedback::DeleteFailed { device, uid } => {
                let mut state = self.lock();
                if let Some(e) = state.devices.get_mut(&device) {
                    let effects = e.sync.handle(SyncInput::DeleteFailed { uid });
                    self.apply(&mut state, &device, effects);
                }
            }
        }
    }

    // ---- pod watch input -------------------------------------------------------------

    /// A pod bound to one of our nodes, with its translation result.
    pub fn on_pod_translated(
        &self,
        device: &DeviceId,
        pod: Arc<Pod>,
        result: Result<Translation, TranslationError>,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if uid.is_empty() {
            return;
        }
        let now = Instant::now();
        let kube_now = now_time(jiff::Timestamp::now());
        let about = EventPod {
            node: device.as_str(),
            namespace: &ns,
            name: &name,
            uid: &uid,
        };
        let mut ops = Vec::new();
        let mut guard = self.lock();
        let state = &mut *guard;
        let effects = {
            let Some(entry) = state.devices.get_mut(device) else {
                return;
            };
            let host_ip = entry.report.as_ref().and_then(device_internal_ip);
            state
                .by_name
                .insert((ns.clone(), name.clone()), uid.clone());
            let pod_entry = state.pods.entry(uid.clone()).or_insert_with(|| PodEntry {
                pod: pod.clone(),
                device: device.clone(),
                last_patched: None,
                phase: None,
                desired_at: None,
                failure: None,
            });
            pod_entry.pod = pod.clone();
            pod_entry.device = device.clone();
            if pod_entry.phase.is_none() {
                let phase = crate::status_mapping::phase_of(&pod).to_owned();
                self.metrics.pod_phase_changed(None, Some(&phase));
                pod_entry.phase = Some(phase);
            }
            match result {
                Ok(t) => {
                    for w in &t.warnings {
                        ops.push(KubeOp::RecordEvent {
                            device: device.clone(),
                            event: Box::new(
                                about
                                    .warning(w.reason.clone(), &w.message, kube_now.clone())
                                    .build(),
                            ),
                        });
                    }
                    if !entry.sync.has_pod(&uid) && !t.spec.is_terminating() {
                        pod_entry.desired_at = Some(now);
                    }
                    entry.sync.handle(SyncInput::PodUpserted(t.spec))
                }
                Err(e) => {
                    let message = e.to_string();
                    let terminating = pod.metadata.deletion_timestamp.is_some();
                    if terminating {
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
                                ops.push(KubeOp::DeletePod {
                                    device: device.clone(),
                                    namespace: ns.clone(),
                                    name: name.clone(),
                                    uid: uid.clone(),
                                });
                                Vec::new()
                            }
                        }
                    } else {
                        if pod_entry.failure.as_deref() != Some(message.as_str()) {
                            warn!(%device, pod = %format!("{ns}/{name}"), error = %message, "pod cannot be run on the device");
                            pod_entry.failure = Some(message.clone());
                            ops.push(KubeOp::RecordEvent {
                                device: device.clone(),
                                event: Box::new(
                                    about
                                        .warning(
                                            EventReason::Failed,
                                            &format!("Error: {message}"),
                                            kube_now.clone(),
                                        )
                                        .build(),
                                ),
                            });
                            let status =
                                config_error_status(&pod, &message, host_ip.as_deref(), &kube_now);
                            self.metrics
                                .pod_phase_changed(pod_entry.phase.as_deref(), Some("Pending"));
                            pod_entry.phase = Some("Pending".to_owned());
                            pod_entry.last_patched = Some(status.clone());
                            ops.push(KubeOp::PatchPodStatus {
                                device: device.clone(),
                                namespace: ns.clone(),
                                name: name.clone(),
                                uid: uid.clone(),
                                status: Box::new(status),
                            });
                        }
                        Vec::new()
                    }
                }
            }
        };
        for op in ops {
            self.ops.send(op);
        }
        self.apply(state, device, effects);
    }

    /// Updates the cached pod object without re-translating (e.g. after our own status patch).
    pub fn on_pod_refreshed(&self, pod: Arc<Pod>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = self.lock();
        if let Some(e) = state.pods.get_mut(&uid) {
            e.pod = pod;
        }
    }

    /// A pod is gone from Kubernetes.
    pub fn on_pod_deleted(&self, uid: &str) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let (device, effects) = {
            let Some(pod_entry) = state.pods.remove(uid) else {
                return;
            };
            self.metrics
                .pod_phase_changed(pod_entry.phase.as_deref(), None);
            let key = (
                pod_entry.pod.metadata.namespace.clone().unwrap_or_default(),
                pod_entry.pod.metadata.name.clone().unwrap_or_default(),
            );
            if state.by_name.get(&key).map(String::as_str) == Some(uid) {
                state.by_name.remove(&key);
            }
            let effects = match state.devices.get_mut(&pod_entry.device) {
                Some(e) => e.sync.handle(SyncInput::PodRemoved {
                    uid: uid.to_owned(),
                }),
                None => Vec::new(),
            };
            (pod_entry.device, effects)
        };
        self.apply(state, &device, effects);
    }

    /// The pod watch has a complete view for `device`: `present` are its pods' uids.
    pub fn on_pods_synced(&self, device: &DeviceId, present: BTreeSet<String>) {
        let mut state = self.lock();
        if let Some(e) = state.devices.get_mut(device) {
            let resync = std::mem::take(&mut e.reported_before_pods);
            let effects = e.sync.handle(SyncInput::KubernetesSynced { present });
            self.apply(&mut state, device, effects);
            if resync {
                // statuses reported before the watch caught up were dropped
                self.send(Outgoing::StatusResync {
                    device: device.clone(),
                    reason: "gateway caught up with its pods".to_owned(),
                });
            }
        }
    }

    // ---- kubelet API queries -----------------------------------------------------------

    /// Every pod on the gateway's nodes.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.lock().pods.values().map(|p| p.pod.clone()).collect()
    }

    /// Where to send a log request for a container.
    pub fn log_target(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<(DeviceId, String), LogTargetError> {
        let state = self.lock();
        let not_found = || LogTargetError::PodNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let uid = state
            .by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(not_found)?;
        let entry = state.pods.get(uid).ok_or_else(not_found)?;
        let has_container = entry
            .pod
            .spec
            .as_ref()
            .is_some_and(|s| s.containers.iter().any(|c| c.name == container));
        if !has_container {
            return Err(LogTargetError::ContainerNotFound {
                name: name.to_owned(),
                container: container.to_owned(),
            });
        }
        let online = state.devices.get(&entry.device).is_some_and(|d| d.online);
        if !online {
            return Err(LogTargetError::DeviceOffline(entry.device.to_string()));
        }
        Ok((entry.device.clone(), uid.clone()))
    }

    pub fn send(&self, out: Outgoing) {
        let _ = self.outbox.send(out);
    }

    /// Sends a log request and returns the receiver of its chunks.
    pub fn start_log_request(
        &self,
        device: &DeviceId,
        request: LogRequest,
    ) -> (RequestId, mpsc::Receiver<edge_protocol::LogChunk>) {
        let (id, rx) = self.logs.open(device);
        self.send(Outgoing::LogRequest {
            device: device.clone(),
            id: id.clone(),
            request,
        });
        (id, rx)
    }

    /// Abandons a log request (the HTTP client went away).
    pub fn cancel_log_request(&self, device: &DeviceId, id: &RequestId) {
        if self.logs.close(id) {
            self.send(Outgoing::LogCancel {
                device: device.clone(),
                id: id.clone(),
            });
        }
    }

    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.lock().devices.get(device).is_some_and(|d| d.online)
    }

    /// The current desired set of a device (for diagnostics and tests).
    pub fn desired_set(&self, device: &DeviceId) -> Option<DesiredSet> {
        self.lock()
            .devices
            .get(device)
            .map(|d| d.sync.desired_set())
    }

    /// Message kinds for the outbox task's metrics.
    pub fn count_out(&self, kind: &str) {
        self.metrics.message_out(kind);
    }

    pub fn store(&self) -> &Store {
        &self.store
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

/// For the outbox: the cancel message.
pub fn log_cancel() -> LogCancel {
    LogCancel {
        reason: Some("client went away".to_owned()),
    }
}

#[cfg(test)]
mod tests;
