//! The thin async loop of agent rollouts: watches the rollout ConfigMap and the device
//! Nodes, hears the devices' update messages (forwarded by the fleet's handle), runs
//! [`plan`](super::plan::plan) every few seconds and after each device's final status,
//! and carries out its decisions: orders and chunks to devices (the MQTT outbox), each
//! Node's progress annotation and Events (the Kubernetes writers, fenced like every write
//! about a device), the rollout's status on the ConfigMap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::{
    AgentUpdateChunk, AgentUpdateFetch, AgentUpdateOrder, AgentUpdateStatus, Base64Bytes, DeviceId,
    Message,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::catalog::{CatalogError, ReleaseCatalog};
use super::fetch_gate::{FetchGate, FetchVerdict};
use super::plan::{Mark, NodeView, RolloutPhase, RolloutStatus, plan};
use super::progress::{NodePhase, NodeProgress};
use super::spec::{ROLLOUT_CONFIGMAP, RolloutSpec};
use super::{DeviceUpdateMessage, events};
use crate::device_nodes::snapshot::{NodeSnapshots, device_node_watch};
use crate::fleet::{Fleet, Outgoing};
use crate::kube_writer::{KubeOp, KubeOps};

/// How often the rollout is planned when nothing happens.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How long this replica's own progress write is believed before the Node watch shows it.
const WRITTEN_TRUSTED: Duration = Duration::from_secs(30);

/// Where the rollout lives and who writes its status.
#[derive(Debug, Clone)]
pub struct RolloutSettings {
    /// Namespace of the `edge-agent-rollout` ConfigMap.
    pub namespace: String,
    pub store_dir: std::path::PathBuf,
    /// The status annotation this gateway writes: [`ROLLOUT_STATUS_ANNOTATION`], with the
    /// replica id appended for a sharded replica (each sees its own devices' blockers).
    pub status_annotation: String,
}

pub struct RolloutRunner {
    pub settings: RolloutSettings,
    pub client: kube::Client,
    pub fleet: Arc<Fleet>,
    pub ops: KubeOps,
    pub outbox: mpsc::UnboundedSender<Outgoing>,
    pub messages: mpsc::Receiver<DeviceUpdateMessage>,
}

impl std::fmt::Debug for RolloutRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutRunner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

struct State {
    spec: Option<Result<RolloutSpec, String>>,
    nodes: NodeSnapshots,
    /// Devices that can update themselves (their last hello).
    capable: HashMap<DeviceId, bool>,
    /// What this replica last wrote per Node, and when (the watch lags behind its own
    /// writes; an entry the watch has not confirmed within [`WRITTEN_TRUSTED`] gives way
    /// to what the Node says, so a write that was fenced or failed is not believed).
    written: HashMap<String, (NodeProgress, Instant)>,
    /// When each device was last sent the order of a version (resent at most every
    /// ORDER_RESEND).
    ordered_at: HashMap<(String, String), Instant>,
    /// The ConfigMap watch has listed once (and the Node watch, `nodes.listed()`): before
    /// that an empty view would look Complete.
    configmap_listed: bool,
    /// During a relist of the ConfigMap: whether it was in the list.
    configmap_relisted: bool,
    /// The ConfigMap's uid, for its Events.
    configmap_uid: Option<String>,
    status_written: Option<String>,
    phase_announced: Option<RolloutPhase>,
    fetches: FetchGate,
}

fn now_ms() -> u64 {
    jiff::Timestamp::now().as_millisecond().max(0) as u64
}

impl RolloutRunner {
    pub async fn run(mut self, token: CancellationToken) {
        let catalog = ReleaseCatalog::new(&self.settings.store_dir);
        let mut state = State {
            spec: None,
            nodes: NodeSnapshots::default(),
            capable: self
                .fleet
                .store()
                .load_reports()
                .into_iter()
                .map(|(d, r)| (d, r.capabilities.agent_update))
                .collect(),
            written: HashMap::new(),
            ordered_at: HashMap::new(),
            configmap_listed: false,
            configmap_relisted: false,
            configmap_uid: None,
            status_written: None,
            phase_announced: None,
            fetches: FetchGate::default(),
        };
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let maps = watcher::watcher(
            maps,
            watcher::Config::default().fields(&format!("metadata.name={ROLLOUT_CONFIGMAP}")),
        )
        .default_backoff();
        let nodes = device_node_watch(self.client.clone());
        let (mut maps, mut nodes) = (std::pin::pin!(maps), std::pin::pin!(nodes));
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        info!(namespace = %self.settings.namespace, "agent rollouts: watching ConfigMap {ROLLOUT_CONFIGMAP}");
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                Some(event) = maps.next() => match event {
                    Ok(event) => self.on_configmap(&mut state, event),
                    Err(e) => warn!(error = %e, "agent rollouts: the ConfigMap watch failed; retrying"),
                },
                Some(item) = nodes.next() => state.nodes.on_watch(item, "agent rollouts"),
                Some(message) = self.messages.recv() => {
                    if self.on_device(&mut state, &catalog, message) {
                        self.reconcile(&mut state, &catalog).await;
                    }
                }
                _ = tick.tick() => {
                    state.fetches.prune(Instant::now());
                    self.reconcile(&mut state, &catalog).await;
                }
            }
        }
    }

    fn on_configmap(&self, state: &mut State, event: watcher::Event<ConfigMap>) {
        let parse = |cm: &ConfigMap| {
            let status = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(&self.settings.status_annotation))
                .cloned();
            let spec =
                RolloutSpec::parse(&cm.data.clone().unwrap_or_default()).map_err(|e| e.to_string());
            (spec, status)
        };
        match event {
            watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                state.configmap_relisted = true;
                state.configmap_uid = cm.metadata.uid.clone();
                let (spec, status) = parse(&cm);
                if state.spec.as_ref() != Some(&spec) {
                    match &spec {
                        Ok(s) => {
                            info!(version = %s.version, selector = s.selector.as_str(), "agent rollout declared")
                        }
                        Err(e) => warn!(error = %e, "the agent rollout ConfigMap is not valid"),
                    }
                }
                state.spec = Some(spec);
                state.status_written = status;
            }
            watcher::Event::Delete(_) => {
                info!("agent rollout ConfigMap deleted: no more orders");
                state.spec = None;
                state.status_written = None;
            }
            watcher::Event::Init => state.configmap_relisted = false,
            watcher::Event::InitDone => {
                state.configmap_listed = true;
                if !state.configmap_relisted && state.spec.is_some() {
                    // deleted while the watch was down
                    info!("agent rollout ConfigMap gone: no more orders");
                    state.spec = None;
                    state.status_written = None;
                }
            }
        }
    }

    fn rollout_version(state: &State) -> Option<&str> {
        match &state.spec {
            Some(Ok(spec)) => Some(&spec.version),
            _ => None,
        }
    }

    /// Files a device's message; whether the rollout should be planned again now.
    fn on_device(
        &self,
        state: &mut State,
        catalog: &ReleaseCatalog,
        message: DeviceUpdateMessage,
    ) -> bool {
        match message {
            DeviceUpdateMessage::Hello {
                device,
                capable,
                agent_update,
            } => {
                state.capable.insert(device.clone(), capable);
                match agent_update {
                    Some(status) => self.on_status(state, &device, &status),
                    None => false,
                }
            }
            DeviceUpdateMessage::Status { device, status } => {
                self.on_status(state, &device, &status)
            }
            DeviceUpdateMessage::Fetch { device, fetch } => {
                self.on_fetch(state, catalog, &device, fetch);
                false
            }
        }
    }

    fn progress_of<'a>(state: &'a State, node: &str) -> Option<&'a NodeProgress> {
        state
            .written
            .get(node)
            .filter(|(_, at)| at.elapsed() < WRITTEN_TRUSTED)
            .map(|(p, _)| p)
            .or_else(|| state.nodes.get(node).and_then(|n| n.progress.as_ref()))
    }

    /// A device's status about the rollout's version, taken only while its update of that
    /// version is under way and only forward (a device cannot rewrite its past, hold a
    /// place by going back and forth, or report on an update it was never ordered).
    fn on_status(&self, state: &mut State, device: &DeviceId, status: &AgentUpdateStatus) -> bool {
        if Self::rollout_version(state) != Some(status.version.as_str()) || !self.ours(device) {
            return false;
        }
        let previous = Self::progress_of(state, device.as_str()).cloned();
        let Some(under_way) = previous
            .as_ref()
            .filter(|p| p.version == status.version && p.phase.in_progress())
        else {
            return false;
        };
        let Some(progress) = NodeProgress::from_device(status, previous.as_ref(), now_ms()) else {
            return false;
        };
        if !under_way.phase.may_move_to(progress.phase)
            || !progress.worth_writing_over(previous.as_ref())
        {
            return false;
        }
        if progress.phase != under_way.phase {
            info!(%device, version = %progress.version, phase = ?progress.phase,
                message = %progress.message, "agent update progress");
        }
        let done = progress.phase != NodePhase::Downloading;
        self.write_mark(
            state,
            Mark {
                node: device.as_str().to_owned(),
                progress,
            },
            previous.as_ref(),
        );
        done
    }

    fn on_fetch(
        &self,
        state: &mut State,
        catalog: &ReleaseCatalog,
        device: &DeviceId,
        fetch: AgentUpdateFetch,
    ) {
        if !self.ours(device) {
            return;
        }
        // only a device whose update of this version is fetching gets bytes
        let fetching = Self::progress_of(state, device.as_str()).is_some_and(|p| {
            p.version == fetch.version
                && matches!(p.phase, NodePhase::Ordered | NodePhase::Downloading)
        });
        let version = Self::rollout_version(state).map(str::to_owned);
        let verdict =
            state
                .fetches
                .check(device, &fetch, version.as_deref(), fetching, Instant::now());
        let arch = state
            .nodes
            .get(device.as_str())
            .map(|n| n.arch.clone())
            .unwrap_or_default();
        let answer = match verdict {
            FetchVerdict::Drop => return,
            FetchVerdict::Refuse(why) => Err(why),
            FetchVerdict::Serve => catalog
                .release(&fetch.version, &arch)
                .and_then(|r| catalog.read_chunk(&r, fetch.offset, fetch.length))
                .map_err(|e| e.to_string()),
        };
        let chunk = match answer {
            Ok(data) => AgentUpdateChunk {
                version: fetch.version,
                offset: fetch.offset,
                data: Base64Bytes(data),
                error: None,
            },
            Err(why) => {
                warn!(%device, version = %fetch.version, %why, "agent update fetch refused");
                AgentUpdateChunk {
                    version: fetch.version,
                    offset: fetch.offset,
                    data: Base64Bytes::default(),
                    error: Some(why),
                }
            }
        };
        self.send(device, Message::AgentUpdateChunk(chunk));
    }

    /// This replica's device, with its Node ours.
    fn ours(&self, device: &DeviceId) -> bool {
        self.fleet.is_known(device.as_str())
    }

    fn send(&self, device: &DeviceId, message: Message) {
        let _ = self.outbox.send(Outgoing::AgentUpdate {
            device: device.clone(),
            message: Box::new(message),
        });
    }

    fn write_mark(&self, state: &mut State, mark: Mark, previous: Option<&NodeProgress>) {
        let Ok(device) = DeviceId::new(&mark.node) else {
            return;
        };
        if previous
            .is_none_or(|p| p.phase != mark.progress.phase || p.version != mark.progress.version)
            && let Some(event) = events::node_event_for(&mark.node, &mark.progress, previous)
        {
            self.ops.send(KubeOp::RecordEvent {
                device: device.clone(),
                event: Box::new(event),
            });
        }
        self.ops.send(KubeOp::AnnotateNode {
            device,
            key: super::progress::AGENT_UPDATE_ANNOTATION.to_owned(),
            value: Some(mark.progress.encode()),
        });
        state
            .written
            .insert(mark.node, (mark.progress, Instant::now()));
    }

    async fn reconcile(&self, state: &mut State, catalog: &ReleaseCatalog) {
        if !(state.nodes.listed() && state.configmap_listed) {
            return;
        }
        let spec = match &state.spec {
            None => return,
            Some(Err(why)) => {
                let status = RolloutStatus::invalid(why.clone());
                return self.write_status(state, &status).await;
            }
            Some(Ok(spec)) => spec.clone(),
        };
        // the watch caught up with what this replica wrote: it is the truth again
        let nodes = &state.nodes;
        state.written.retain(|n, (p, at)| {
            at.elapsed() < WRITTEN_TRUSTED
                && self.fleet.is_known(n)
                && nodes.get(n).is_some_and(|s| s.progress.as_ref() != Some(p))
        });
        state
            .ordered_at
            .retain(|_, at| at.elapsed() < Duration::from_secs(24 * 3600));
        let target_kubelet_version = crate::kube_writer::kubelet_version(&spec.version);
        let views: Vec<NodeView> = state
            .nodes
            .iter()
            .map(|(name, snapshot)| {
                let device = DeviceId::new(name).ok();
                let ours = self.fleet.is_known(name);
                let blocked = if !ours {
                    None
                } else if !device
                    .as_ref()
                    .and_then(|d| state.capable.get(d))
                    .copied()
                    .unwrap_or(false)
                {
                    Some(
                        "its agent cannot update itself over the air: it runs without \
                         `edge-agent supervise` or without the fleet's key \
                         (/etc/edge-agent/ota-signing.pub); see docs/deploy.md"
                            .to_owned(),
                    )
                } else {
                    match catalog.release(&spec.version, &snapshot.arch) {
                        Ok(_) => None,
                        Err(e @ CatalogError::Missing { .. }) => Some(e.to_string()),
                        Err(e) => Some(format!("the release cannot be served: {e}")),
                    }
                };
                NodeView {
                    name: name.clone(),
                    labels: snapshot.labels.clone(),
                    // the Node shows the version sanitized: compare in its terms
                    agent_version: if snapshot.kubelet_version == target_kubelet_version {
                        spec.version.clone()
                    } else {
                        snapshot.kubelet_version.clone()
                    },
                    ready: device.as_ref().is_some_and(|d| self.fleet.is_online(d)),
                    progress: Self::progress_of(state, name).cloned(),
                    ours,
                    blocked,
                }
            })
            .collect();
        let decided = plan(&spec, &views, now_ms());
        for mark in decided.marks {
            let previous = Self::progress_of(state, &mark.node).cloned();
            self.write_mark(state, mark, previous.as_ref());
        }
        for node in &decided.orders {
            let (Ok(device), Some(snapshot)) = (DeviceId::new(node), state.nodes.get(node)) else {
                continue;
            };
            let key = (node.clone(), spec.version.clone());
            let again = match state.ordered_at.get(&key) {
                Some(at) if at.elapsed() < super::plan::ORDER_RESEND => continue,
                Some(_) => true,
                None => false,
            };
            state.ordered_at.insert(key, Instant::now());
            match again {
                true => info!(%device, version = %spec.version, "agent update order sent again"),
                false => info!(%device, version = %spec.version, "agent update ordered"),
            }
            match catalog.release(&spec.version, &snapshot.arch) {
                Ok(release) => self.send(
                    &device,
                    Message::AgentUpdateOrder(AgentUpdateOrder {
                        version: release.version.clone(),
                        sha256: release.sha256.clone(),
                        size_bytes: release.size,
                        signature: Base64Bytes(release.signature.clone()),
                        health_deadline_seconds: spec.health_deadline.as_secs() as u32,
                    }),
                ),
                Err(e) => warn!(%device, error = %e, "cannot order an agent update"),
            }
        }
        self.write_status(state, &decided.status).await;
    }

    async fn write_status(&self, state: &mut State, status: &RolloutStatus) {
        let encoded = serde_json::to_string(status).unwrap_or_default();
        if state.status_written.as_deref() == Some(encoded.as_str()) {
            return;
        }
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {
            self.settings.status_annotation.clone(): encoded,
        }}});
        match maps
            .patch(
                ROLLOUT_CONFIGMAP,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                state.status_written = Some(encoded);
                if state.phase_announced != Some(status.phase) {
                    state.phase_announced = Some(status.phase);
                    info!(phase = ?status.phase, version = %status.version, updated = status.updated,
                        failed = status.failed, message = %status.message, "agent rollout");
                    events::record_rollout_event(
                        &self.client,
                        &self.settings.namespace,
                        state.configmap_uid.as_deref(),
                        status,
                    )
                    .await;
                }
            }
            Err(e) => warn!(error = %e, "cannot write the agent rollout's status"),
        }
    }
}
