//! The thin async loop of image pre-pull: watches the pre-pull ConfigMaps and the device
//! Nodes, hears the devices' pre-pull statuses (forwarded by the fleet's handle), reads
//! the pull Secrets, runs [`plan`] every few seconds and after each status, and carries
//! out its decisions: each device's set (the MQTT outbox), each Node's annotation and
//! Events (the Kubernetes writers, fenced like every write about a device), each
//! pre-pull's status on its ConfigMap.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::{DeviceId, ImagePrepullStatus, RegistryCredential};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::plan::{
    Decisions, DeviceView, NodePrepull, NodePrepullPhase, Prepull, PrepullStatus,
    PrepullStatusPhase, plan,
};
use super::spec::{PREPULL_LABEL, PrepullSpec};
use super::{DevicePrepullMessage, NODE_ANNOTATION};
use crate::device_nodes::snapshot::{NodeSnapshots, device_node_watch};
use crate::fleet::{Fleet, Outgoing};
use crate::kube_writer::{
    EventReason, EventType, KubeOp, KubeOps, configmap_event, node_event, post_configmap_event,
};
use crate::translation::ObjectData;
use crate::translation::pull_secrets::credentials_from_secret;

/// How often the pre-pulls are planned when nothing happens.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// A set the device has not confirmed is sent again after this.
const SET_RESEND: Duration = Duration::from_secs(60);
/// Pull Secrets are read again after this.
const SECRET_TTL: Duration = Duration::from_secs(60);
/// A Node's annotation changes at most this often while only its byte counts move.
const BYTES_ANNOTATION_EVERY: Duration = Duration::from_secs(10);
/// How long this replica's own annotation write is believed before the Node watch shows it.
const WRITTEN_TRUSTED: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PrepullSettings {
    /// Namespace of the pre-pull ConfigMaps and their pull Secrets.
    pub namespace: String,
    /// The status annotation this gateway writes: [`super::STATUS_ANNOTATION`], with the
    /// replica id appended for a sharded replica.
    pub status_annotation: String,
}

pub struct PrepullRunner {
    pub settings: PrepullSettings,
    pub client: kube::Client,
    pub fleet: Arc<Fleet>,
    pub ops: KubeOps,
    pub outbox: mpsc::UnboundedSender<Outgoing>,
    pub messages: mpsc::Receiver<DevicePrepullMessage>,
}

impl std::fmt::Debug for PrepullRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepullRunner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One pre-pull ConfigMap as the watch last showed it.
#[derive(Debug, Clone)]
struct Declared {
    uid: Option<String>,
    spec: Result<PrepullSpec, String>,
    /// Its status annotation as last seen or written.
    status: Option<String>,
    /// The phase last announced in an Event.
    announced: Option<PrepullStatusPhase>,
}

#[derive(Default)]
struct State {
    declared: BTreeMap<String, Declared>,
    relisting: Option<BTreeMap<String, Declared>>,
    maps_listed: bool,
    nodes: NodeSnapshots,
    capable: HashMap<DeviceId, bool>,
    statuses: HashMap<DeviceId, ImagePrepullStatus>,
    /// The revision last sent to each device, and when.
    sent: HashMap<String, (String, Instant)>,
    /// What this replica last wrote on each Node, and when.
    written: HashMap<String, (Option<NodePrepull>, Instant)>,
    secrets: HashMap<String, (Result<Vec<RegistryCredential>, String>, Instant)>,
}

impl PrepullRunner {
    pub async fn run(mut self, token: CancellationToken) {
        let mut state = State::default();
        for (device, report) in self.fleet.store().load_reports() {
            state
                .capable
                .insert(device.clone(), report.capabilities.image_prepull);
            if let Some(status) = report.image_prepull {
                state.statuses.insert(device, status);
            }
        }
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let maps = watcher::watcher(maps, watcher::Config::default().labels(PREPULL_LABEL))
            .default_backoff();
        let nodes = device_node_watch(self.client.clone());
        let (mut maps, mut nodes) = (std::pin::pin!(maps), std::pin::pin!(nodes));
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        info!(namespace = %self.settings.namespace, "image pre-pull: watching ConfigMaps labelled {PREPULL_LABEL}");
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                Some(event) = maps.next() => match event {
                    Ok(event) => self.on_configmap(&mut state, event),
                    Err(e) => warn!(error = %e, "image pre-pull: the ConfigMap watch failed; retrying"),
                },
                Some(item) = nodes.next() => state.nodes.on_watch(item, "image pre-pull"),
                Some(message) = self.messages.recv() => {
                    if Self::on_device(&mut state, message) {
                        self.reconcile(&mut state).await;
                    }
                }
                _ = tick.tick() => self.reconcile(&mut state).await,
            }
        }
    }

    fn on_configmap(&self, state: &mut State, event: watcher::Event<ConfigMap>) {
        let declared = |cm: &ConfigMap, before: Option<&Declared>| {
            let spec =
                PrepullSpec::parse(&cm.data.clone().unwrap_or_default()).map_err(|e| e.to_string());
            Declared {
                uid: cm.metadata.uid.clone(),
                spec,
                status: cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(&self.settings.status_annotation))
                    .cloned(),
                announced: before.and_then(|b| b.announced),
            }
        };
        let name = |cm: &ConfigMap| cm.metadata.name.clone().unwrap_or_default();
        // `edge-kube.io/image-prepull: "false"` turns a pre-pull off without deleting it
        let off = |cm: &ConfigMap| {
            cm.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PREPULL_LABEL))
                .is_some_and(|v| v == "false")
        };
        match event {
            watcher::Event::Init => state.relisting = Some(BTreeMap::new()),
            watcher::Event::InitApply(cm) => {
                if !off(&cm) {
                    let d = declared(&cm, state.declared.get(&name(&cm)));
                    state
                        .relisting
                        .get_or_insert_with(BTreeMap::new)
                        .insert(name(&cm), d);
                }
            }
            watcher::Event::InitDone => {
                if let Some(all) = state.relisting.take() {
                    state.declared = all;
                }
                state.maps_listed = true;
            }
            watcher::Event::Apply(cm) if off(&cm) => {
                state.declared.remove(&name(&cm));
            }
            watcher::Event::Apply(cm) => {
                let d = declared(&cm, state.declared.get(&name(&cm)));
                let changed = state
                    .declared
                    .get(&name(&cm))
                    .is_none_or(|before| before.spec != d.spec);
                if changed {
                    match &d.spec {
                        Ok(spec) => info!(prepull = %name(&cm), images = spec.images.len(),
                            selector = spec.selector.as_str(), "image pre-pull declared"),
                        Err(e) => {
                            warn!(prepull = %name(&cm), error = %e, "image pre-pull ConfigMap is not valid")
                        }
                    }
                }
                state.declared.insert(name(&cm), d);
            }
            watcher::Event::Delete(cm) => {
                info!(prepull = %name(&cm), "image pre-pull deleted: its images are released");
                state.declared.remove(&name(&cm));
            }
        }
    }

    /// Files a device's message; whether the pre-pulls should be planned again now.
    fn on_device(state: &mut State, message: DevicePrepullMessage) -> bool {
        match message {
            DevicePrepullMessage::Hello {
                device,
                capable,
                status,
            } => {
                state.capable.insert(device.clone(), capable);
                // a reconnected device is sent its set again at once if it differs
                state.sent.remove(device.as_str());
                match status {
                    Some(status) => state.statuses.insert(device, status),
                    None => state.statuses.remove(&device),
                };
                true
            }
            DevicePrepullMessage::Status { device, status } => {
                let phases = |s: &ImagePrepullStatus| {
                    s.images
                        .iter()
                        .map(|i| (i.phase, i.image.clone()))
                        .collect::<Vec<_>>()
                };
                let moved = state.statuses.get(&device).is_none_or(|before| {
                    before.revision != status.revision || phases(before) != phases(&status)
                });
                state.statuses.insert(device, status);
                moved
            }
        }
    }

    /// The logins of `names`, read at most every [`SECRET_TTL`]; `Err` names the first
    /// Secret that is missing or unusable.
    async fn credentials(
        &self,
        state: &mut State,
        names: &[String],
    ) -> Result<Vec<RegistryCredential>, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let mut all = Vec::new();
        for name in names {
            let fresh = state
                .secrets
                .get(name)
                .is_some_and(|(_, at)| at.elapsed() < SECRET_TTL);
            if !fresh {
                let read = match secrets.get_opt(name).await {
                    Ok(Some(secret)) => credentials_from_secret(&ObjectData::from_secret(&secret))
                        .map_err(|e| format!("Secret {name} {e}")),
                    Ok(None) => Err(format!(
                        "Secret {name} not found in namespace {}: create it (kubectl create \
                         secret docker-registry {name} ...) or remove it from imagePullSecrets",
                        self.settings.namespace
                    )),
                    Err(e) => Err(format!("Secret {name} cannot be read: {e}")),
                };
                state.secrets.insert(name.clone(), (read, Instant::now()));
            }
            match &state.secrets[name].0 {
                Ok(creds) => all.extend(creds.iter().cloned()),
                Err(why) => return Err(why.clone()),
            }
        }
        Ok(all)
    }

    async fn reconcile(&self, state: &mut State) {
        if !(state.maps_listed && state.nodes.listed()) {
            return;
        }
        let mut prepulls = Vec::new();
        for (name, declared) in state.declared.clone() {
            let credentials = match &declared.spec {
                Ok(spec) => self.credentials(state, &spec.pull_secrets).await,
                Err(_) => Ok(Vec::new()),
            };
            prepulls.push(Prepull {
                name,
                spec: declared.spec,
                credentials,
            });
        }
        let devices: Vec<DeviceView> = state
            .nodes
            .iter()
            .map(|(name, snapshot)| {
                let device = DeviceId::new(name).ok();
                DeviceView {
                    node: name.clone(),
                    labels: snapshot.labels.clone(),
                    ours: self.fleet.is_known(name),
                    capable: device
                        .as_ref()
                        .and_then(|d| state.capable.get(d))
                        .copied()
                        .unwrap_or(false),
                    status: device.as_ref().and_then(|d| state.statuses.get(d)).cloned(),
                }
            })
            .collect();
        let decisions = plan(&prepulls, &devices);
        self.send_sets(state, &decisions);
        self.annotate_nodes(state, &decisions);
        for (name, status) in &decisions.statuses {
            self.write_status(state, name, status).await;
        }
    }

    fn send_sets(&self, state: &mut State, decisions: &Decisions) {
        for (node, set) in &decisions.sets {
            let Ok(device) = DeviceId::new(node) else {
                continue;
            };
            let reported = state
                .statuses
                .get(&device)
                .map(|s| s.revision.as_str())
                .unwrap_or("");
            if reported == set.revision || !self.fleet.is_online(&device) {
                continue;
            }
            if state
                .sent
                .get(node)
                .is_some_and(|(rev, at)| *rev == set.revision && at.elapsed() < SET_RESEND)
            {
                continue;
            }
            info!(%device, revision = %set.revision, images = set.images.len(), "image pre-pull set sent");
            state
                .sent
                .insert(node.clone(), (set.revision.clone(), Instant::now()));
            let _ = self.outbox.send(Outgoing::ImagePrepull {
                device,
                set: Box::new(set.clone()),
            });
        }
    }

    fn annotate_nodes(&self, state: &mut State, decisions: &Decisions) {
        for (node, wanted) in &decisions.nodes {
            let Ok(device) = DeviceId::new(node) else {
                continue;
            };
            let (previous, written_at) = match state.written.get(node) {
                Some((p, at)) if at.elapsed() < WRITTEN_TRUSTED => (p.clone(), Some(*at)),
                _ => (
                    state
                        .nodes
                        .get(node)
                        .and_then(|s| s.image_prepull.as_deref())
                        .and_then(NodePrepull::parse),
                    None,
                ),
            };
            if previous == *wanted {
                continue;
            }
            let phase = |p: &Option<NodePrepull>| p.as_ref().map(|p| p.phase);
            let phase_changed = phase(&previous) != phase(wanted);
            if !phase_changed && written_at.is_some_and(|at| at.elapsed() < BYTES_ANNOTATION_EVERY)
            {
                continue;
            }
            if phase_changed && let Some(event) = node_event_for(node, wanted.as_ref()) {
                self.ops.send(KubeOp::RecordEvent {
                    device: device.clone(),
                    event: Box::new(event),
                });
            }
            self.ops.send(KubeOp::AnnotateNode {
                device,
                key: NODE_ANNOTATION.to_owned(),
                value: wanted.as_ref().map(NodePrepull::encode),
            });
            state
                .written
                .insert(node.clone(), (wanted.clone(), Instant::now()));
        }
        let nodes = &state.nodes;
        state.written.retain(|n, (_, at)| {
            at.elapsed() < WRITTEN_TRUSTED && nodes.get(n).is_some() && self.fleet.is_known(n)
        });
    }

    async fn write_status(&self, state: &mut State, name: &str, status: &PrepullStatus) {
        let Some(declared) = state.declared.get_mut(name) else {
            return;
        };
        let encoded = serde_json::to_string(status).unwrap_or_default();
        if declared.status.as_deref() == Some(encoded.as_str()) {
            return;
        }
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {
            self.settings.status_annotation.clone(): encoded,
        }}});
        match maps
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => declared.status = Some(encoded),
            Err(e) => {
                warn!(prepull = %name, error = %e, "cannot write the image pre-pull's status");
                return;
            }
        }
        if declared.announced == Some(status.phase) {
            return;
        }
        declared.announced = Some(status.phase);
        info!(prepull = %name, phase = ?status.phase, nodes = status.nodes, complete = status.complete,
            failed = status.failed, message = %status.message, "image pre-pull");
        let (event_type, message) = match status.phase {
            PrepullStatusPhase::Invalid => (EventType::Warning, status.message.clone()),
            _ => (
                EventType::Normal,
                format!(
                    "{} image(s) on {} of {} Node(s){}",
                    status.images,
                    status.complete,
                    status.nodes,
                    match status.message.as_str() {
                        "" => String::new(),
                        m => format!("; {m}"),
                    }
                ),
            ),
        };
        let event = configmap_event(
            &self.settings.namespace,
            name,
            declared.uid.as_deref(),
            event_type,
            EventReason::Prepull(format!("Prepull{:?}", status.phase)).as_str(),
            &message,
        );
        post_configmap_event(&self.client, &event).await;
    }
}

/// The Node's Event when its pre-pull reaches a phase worth telling.
fn node_event_for(
    node: &str,
    progress: Option<&NodePrepull>,
) -> Option<k8s_openapi::api::core::v1::Event> {
    let progress = progress?;
    let (event_type, reason, message) = match progress.phase {
        NodePrepullPhase::Complete => (
            EventType::Normal,
            EventReason::ImagesPrepulled,
            format!("{} image(s) pulled ahead", progress.images),
        ),
        NodePrepullPhase::Failed => (
            EventType::Warning,
            EventReason::ImagePrepullFailed,
            format!(
                "pre-pull failed, retrying with back-off: {}",
                progress.message
            ),
        ),
        _ => return None,
    };
    Some(node_event(
        node,
        event_type,
        reason,
        &message,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    ))
}
