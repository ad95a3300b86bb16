//! The fleet: every device's registry entry, sync state and pods.
//!
//! [`FleetState`] is a pure state machine: [`FleetState::handle`] takes one input
//! ([`FleetInput`]: a decoded device message, a pod change, a Kubernetes write's result,
//! a tick...) and returns the effects ([`FleetEffect`]: Kubernetes writes, MQTT
//! messages, store writes...). Its decisions are made by small controllers, one file
//! each:
//!
//! | file | what it decides |
//! |---|---|
//! | `state.rs` | the data, [`FleetState::handle`] routing each input, queries |
//! | `registration.rs` | hello, Node registered / refused / failed |
//! | `node_claim.rs` | whether the Node named like a device is ours |
//! | `admission.rs` | `--allow-device` and the revocation list |
//! | `liveness.rs` | online/offline, Lease renewal, node status, the tick |
//! | `delivery.rs` | desired sets (through [`crate::device_sync`]), refused pods, retries |
//! | `pod_status.rs` | status reports → pod status patches; device events → Events |
//! | `log_routing.rs` | log requests, cancels and chunks |
//! | `stream_routing.rs` | exec/attach/port-forward messages of devices, and ending a device's streams |
//! | `retirement.rs` | a retired (revoked) device: forgotten, its Node, Lease and pods deleted, told to wipe itself; refused when it comes back |
//! | `introductions.rs` | devices that talk before saying hello |
//! | `handover.rs` | sharded gateways: a device handed to another replica forgotten, one handed to this replica asked for its report |
//!
//! One task owns the state: the [`FleetRunner`] (`runner.rs`) takes inputs from one
//! channel, calls `handle` and executes the effects in order. Other tasks hold a
//! [`Fleet`], the handle that queues inputs, asks the runner questions, and reads the
//! device directory the runner publishes (`directory.rs`).

use crate::log_cache::LogCache;
pub use log_tail::OfflineLogSource;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_protocol::{DesiredSet, DeviceId, LogCancel, LogRequest, RequestId};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

mod admission;
mod delivery;
mod directory;
mod effect;
mod handover;
mod input;
mod introductions;
mod liveness;
mod log_routing;
mod log_tail;
mod node_claim;
mod pod_status;
mod registration;
mod retirement;
mod runner;
mod side_channels;
mod state;
mod stream_routing;

pub use admission::AdmissionError;
pub use directory::{DeviceDirectory, DeviceFacts};
pub use effect::{Effects, FleetEffect, MetricUpdate};
pub use input::{FleetInput, Now, Revocation};
pub use runner::FleetRunner;
pub use state::FleetState;

use crate::device_streams::{DeviceReadiness, DeviceStreams, PodPlacement};
use crate::health::Health;
use crate::hostile_input::{Rejection, Rejections};
use crate::kube_writer::{KubeFeedback, KubeOps};
use crate::log_streams::LogStreams;
use crate::metrics::Metrics;
use crate::mqtt_link::DeviceFrame;
use crate::node_object::NodeSettings;
use crate::store::Store;
use crate::translation::{NodeContext, Translation, TranslationError};
use crate::usage_stats::UsageStore;
use runner::{Command, EffectSinks, FleetQuery};

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
    /// Tell a retired device to wipe itself and stop (`down/retire`).
    Retire {
        device: DeviceId,
        reason: String,
    },
    /// An agent update order or chunk (`down/agent-update`).
    AgentUpdate {
        device: DeviceId,
        message: Box<edge_protocol::Message>,
    },
    /// The images the device should pull ahead and keep (`down/prepull`).
    ImagePrepull {
        device: DeviceId,
        set: Box<edge_protocol::ImagePrepullSet>,
    },
    /// A message of an exec, attach or port-forward stream (`down/stream/{id}`).
    Stream {
        device: DeviceId,
        id: RequestId,
        message: Box<edge_protocol::Message>,
        /// The device reads binary data frames (its stream protocol is 2 or later).
        binary_data: bool,
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
    /// Bytes of output the offline log cache keeps per container (0 = off).
    pub log_cache_bytes: u64,
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
            log_cache_bytes: crate::log_cache::DEFAULT_CACHE_BYTES,
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

/// Device messages that may wait for the runner at once; the MQTT link stops reading
/// the broker connection while this many are queued.
pub const DEVICE_FRAME_INTAKE: usize = 1024;

/// The handle other tasks hold: it queues inputs for the [`FleetRunner`], asks it
/// questions, and reads the device directory it publishes. It never touches the state.
#[derive(Debug)]
pub struct Fleet {
    commands: mpsc::UnboundedSender<Command>,
    /// Places in the bounded intake of device messages ([`Fleet::queue_device_frame`]).
    frame_intake: Arc<tokio::sync::Semaphore>,
    directory: Arc<DeviceDirectory>,
    store: Store,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    logs: Arc<LogStreams>,
    log_cache: Arc<LogCache>,
    streams: Arc<DeviceStreams>,
    rejections: Arc<Rejections>,
    usage: Arc<UsageStore>,
    /// The runner until [`Fleet::run`] (or [`Fleet::take_runner`]) takes it.
    runner: Mutex<Option<FleetRunner>>,
    /// Which devices are this replica's (sharded gateways); unsharded when never set.
    shard_gate: Arc<std::sync::OnceLock<crate::sharding::ShardGate>>,
    /// Where agent-update messages go (when agent rollouts are on).
    rollouts: std::sync::OnceLock<crate::agent_rollout::RolloutInbox>,
    /// Where pre-pull statuses go (when image pre-pull is on).
    prepulls: std::sync::OnceLock<crate::image_prepull::PrepullInbox>,
}

impl Fleet {
    /// Restores every stored device (offline until it is heard from). The runner is
    /// created with it and waits for [`Fleet::run`].
    pub fn new(
        settings: FleetSettings,
        store: Store,
        metrics: Arc<Metrics>,
        ops: KubeOps,
        outbox: mpsc::UnboundedSender<Outgoing>,
        pod_watch: mpsc::UnboundedSender<PodWatchRequest>,
    ) -> Self {
        let reports = store.load_reports();
        let stored = store
            .load_devices()
            .into_iter()
            .filter_map(|record| match record {
                Ok(device) => Some(device),
                Err(e) => {
                    warn!(error = %e, "skipping a stored device record");
                    None
                }
            });
        let rejections = Arc::new(Rejections::new(
            metrics.clone(),
            settings.rejection_log_window,
        ));
        let revocations = crate::enrollment::CachedRevocationList::new(settings.store_dir.clone());
        let log_cache = Arc::new(LogCache::open(store.clone(), settings.log_cache_bytes));
        let state = FleetState::restore(settings, stored, reports);
        metrics.devices_total.set(state.device_ids().count() as i64);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let directory = Arc::new(DeviceDirectory::default());
        let health = Arc::new(Health::default());
        let logs = Arc::new(LogStreams::default());
        let streams = Arc::new(DeviceStreams::new(outbox.clone(), metrics.clone()));
        let shard_gate = Arc::new(std::sync::OnceLock::new());
        let sinks = EffectSinks {
            shard_gate: shard_gate.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            ops,
            outbox,
            pod_watch,
            logs: logs.clone(),
            log_cache: log_cache.clone(),
            streams: streams.clone(),
            rejections: rejections.clone(),
            revocations,
            directory: directory.clone(),
        };
        let runner = FleetRunner::new(state, sinks, commands_rx);
        Self {
            commands,
            frame_intake: Arc::new(tokio::sync::Semaphore::new(DEVICE_FRAME_INTAKE)),
            directory,
            store,
            metrics,
            health,
            logs,
            log_cache,
            streams,
            rejections,
            usage: Arc::new(UsageStore::default()),
            runner: Mutex::new(Some(runner)),
            shard_gate,
            rollouts: std::sync::OnceLock::new(),
            prepulls: std::sync::OnceLock::new(),
        }
    }

    /// Runs the fleet's runner until cancelled (returns at once if it was taken).
    pub async fn run(&self, token: CancellationToken) {
        match self.take_runner() {
            Some(runner) => runner.run(token).await,
            None => warn!("the fleet's runner was already taken"),
        }
    }

    /// Takes the runner, to drive it without a runtime (tests, the fuzz harness).
    pub fn take_runner(&self) -> Option<FleetRunner> {
        self.runner.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    fn input(&self, input: FleetInput) {
        self.command(Command::Input(input));
    }

    /// Readiness, shared with the outbox and the `/readyz` endpoint.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn logs(&self) -> &LogStreams {
        &self.logs
    }

    /// The offline log cache (filled by the runner).
    pub fn log_cache(&self) -> &LogCache {
        &self.log_cache
    }

    /// Open exec, attach and port-forward streams.
    pub fn streams(&self) -> &Arc<DeviceStreams> {
        &self.streams
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The devices' latest resource usage samples.
    pub fn usage(&self) -> &Arc<UsageStore> {
        &self.usage
    }

    /// Counts, logs (rate limited per source) and drops a bad message.
    pub fn reject(&self, rejection: &Rejection) {
        self.rejections.reject(rejection);
    }

    // ---- inputs --------------------------------------------------------------------

    /// A decoded message of a device (from the MQTT link).
    pub fn on_device_frame(&self, frame: DeviceFrame) {
        let Some(frame) = self.file_side_channels(frame) else {
            return;
        };
        self.command(Command::Frame {
            frame,
            _intake: None,
        });
    }

    /// Queues a decoded device message once fewer than [`DEVICE_FRAME_INTAKE`] are
    /// waiting for the runner: the MQTT link awaits this, so a fleet that falls behind
    /// slows the reading of the broker connection instead of queueing without bound.
    pub async fn queue_device_frame(&self, frame: DeviceFrame) {
        let Some(frame) = self.file_side_channels(frame) else {
            return;
        };
        let intake = self.frame_intake.clone().acquire_owned().await.ok();
        self.command(Command::Frame {
            frame,
            _intake: intake,
        });
    }

    /// Places free in the bounded intake of device messages (for tests and metrics).
    pub fn device_frame_intake_free(&self) -> usize {
        self.frame_intake.available_permits()
    }

    /// Results of Kubernetes writes.
    pub fn on_feedback(&self, feedback: KubeFeedback) {
        self.input(FleetInput::Kube(feedback));
    }

    /// A pod bound to one of our nodes, with its translation result.
    pub fn on_pod_translated(
        &self,
        device: &DeviceId,
        pod: Arc<Pod>,
        result: Result<Translation, TranslationError>,
    ) {
        self.input(FleetInput::PodTranslated {
            device: device.clone(),
            pod,
            result,
        });
    }

    /// Updates the cached pod object without re-translating (e.g. after our own status patch).
    pub fn on_pod_refreshed(&self, pod: Arc<Pod>) {
        self.input(FleetInput::PodRefreshed(pod));
    }

    /// A pod is gone from Kubernetes.
    pub fn on_pod_deleted(&self, uid: &str) {
        self.input(FleetInput::PodDeleted {
            uid: uid.to_owned(),
        });
    }

    /// The pod watch has a complete view for `device`: `present` are its pods' uids.
    pub fn on_pods_synced(&self, device: &DeviceId, present: BTreeSet<String>) {
        self.input(FleetInput::PodsSynced {
            device: device.clone(),
            present,
        });
    }

    /// Sharded gateways: `device` was handed to this replica (`to_us`) or away from it.
    pub fn on_handover(&self, device: &DeviceId, to_us: bool) {
        self.input(FleetInput::HandedOver {
            device: device.clone(),
            to_us,
        });
    }

    /// Makes this fleet one replica's share (before any device message).
    pub fn set_shard_gate(&self, gate: crate::sharding::ShardGate) {
        let _ = self.shard_gate.set(gate);
    }

    /// Which devices are this replica's (every device, unsharded).
    pub fn shard_gate(&self) -> crate::sharding::ShardGate {
        self.shard_gate.get().cloned().unwrap_or_default()
    }

    /// Periodic pass over every device: liveness, leases, node status; devices revoked
    /// since; desired sets held back by a failing store.
    pub fn tick(&self) {
        self.command(Command::Tick);
    }

    /// The broker answered a reconnect without our session: every desired set a device
    /// has not acknowledged is sent again.
    pub fn on_broker_session_lost(&self) {
        self.input(FleetInput::BrokerSessionLost);
    }

    /// Sends a log request and returns the receiver of its chunks.
    pub fn start_log_request(
        &self,
        device: &DeviceId,
        request: LogRequest,
    ) -> (RequestId, mpsc::Receiver<edge_protocol::LogChunk>) {
        let (id, rx) = self.logs.open(device);
        self.input(FleetInput::LogRequested {
            device: device.clone(),
            id: id.clone(),
            request,
        });
        (id, rx)
    }

    /// Abandons a log request (the HTTP client went away).
    pub fn cancel_log_request(&self, device: &DeviceId, id: &RequestId) {
        if self.logs.close(id) {
            self.input(FleetInput::LogCancelled {
                device: device.clone(),
                id: id.clone(),
            });
        }
    }

    // ---- queries: the device directory ---------------------------------------------

    /// Whether pods bound to `node` are ours: a device whose Node the gateway manages.
    pub fn is_known(&self, node: &str) -> bool {
        DeviceId::new(node)
            .ok()
            .and_then(|d| self.directory.get(&d))
            .is_some_and(|f| f.owned)
    }

    pub fn known_devices(&self) -> Vec<DeviceId> {
        self.directory.known_devices()
    }

    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.directory.get(device).is_some_and(|f| f.online)
    }

    /// Downward-API facts about a device's node.
    pub fn node_context(&self, device: &DeviceId) -> NodeContext {
        self.directory
            .get(device)
            .map(|f| f.node)
            .unwrap_or_else(|| NodeContext {
                node_name: device.to_string(),
                ..NodeContext::default()
            })
    }

    // ---- queries: asked from the runner --------------------------------------------

    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> FleetQuery) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Query(query(reply)));
        answer.await.ok()
    }

    /// Every pod on the gateway's nodes.
    pub async fn pods(&self) -> Vec<Arc<Pod>> {
        self.ask(FleetQuery::Pods).await.unwrap_or_default()
    }

    /// Where to send a log request for a container.
    pub async fn log_target(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<(DeviceId, String), LogTargetError> {
        let query = |reply| FleetQuery::LogTarget {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            container: container.to_owned(),
            reply,
        };
        self.ask(query).await.unwrap_or_else(|| {
            Err(LogTargetError::PodNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        })
    }

    /// The pod a `kubectl logs` is about if its device is offline: what the answer from
    /// the log cache needs (`None`: unknown pod, or the device is online).
    pub async fn offline_log_source(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Option<OfflineLogSource> {
        let query = |reply| FleetQuery::OfflineLogSource {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            container: container.to_owned(),
            reply,
        };
        self.ask(query).await.flatten()
    }

    /// Where pod `namespace/name` runs and what its device can do with streams now.
    pub async fn stream_placement(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(PodPlacement, DeviceReadiness)> {
        let query = |reply| FleetQuery::StreamPlacement {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reply,
        };
        self.ask(query).await.flatten()
    }

    /// The current desired set of a device (for diagnostics and tests).
    pub async fn desired_set(&self, device: &DeviceId) -> Option<DesiredSet> {
        let query = |reply| FleetQuery::DesiredSet {
            device: device.clone(),
            reply,
        };
        self.ask(query).await.flatten()
    }
}

/// For the outbox: the cancel message.
pub fn log_cancel() -> LogCancel {
    LogCancel {
        reason: Some("client went away".to_owned()),
    }
}

#[cfg(test)]
mod tests;
