//! One watch over all pods, whatever the number of nodes: pods bound to the gateway's
//! nodes are translated (fetching the ConfigMaps and Secrets they reference) and handed
//! to the fleet. No watch per node.
//!
//! Re-translation happens only when something that feeds the device spec changes
//! (generation, deletion, labels, annotations, containers and ephemeral containers), not
//! on our own status patches; when a ConfigMap or Secret the pod references changes (one
//! watch per referenced object, [`object_watches`]); and when one of its service account
//! tokens is due ([`TokenBook`]). Pods that failed to translate are retried periodically
//! (like the kubelet's sync loop).

mod object_watches;
mod references;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::DeviceId;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::fleet::{Fleet, PodWatchRequest};
use crate::reference_index::{ReferenceIndex, WatchChanges};
use crate::token_schedule::TokenBook;
use crate::translation::{TranslationError, referenced_objects, translate_pod};
use object_watches::{ObjectChange, ObjectWatches};

/// How often held service account tokens are checked for being due.
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often pods that could not be translated are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

fn spec_key(pod: &Pod) -> String {
    let m = &pod.metadata;
    serde_json::json!([
        m.generation,
        m.deletion_timestamp,
        m.deletion_grace_period_seconds,
        m.labels,
        m.annotations,
        pod.spec.as_ref().map(|s| &s.containers),
        // `kubectl debug` adds these without changing the generation.
        pod.spec.as_ref().map(|s| &s.ephemeral_containers),
    ])
    .to_string()
}

struct PodWatch {
    client: kube::Client,
    fleet: Arc<Fleet>,
    /// Every pod with a nodeName, by uid.
    pods: HashMap<String, Arc<Pod>>,
    /// Translation key last used per uid.
    translated: HashMap<String, String>,
    failed: BTreeSet<String>,
    synced: bool,
    init_buffer: Option<HashMap<String, Arc<Pod>>>,
    /// Which pods use which ConfigMaps/Secrets.
    index: ReferenceIndex,
    watches: ObjectWatches,
    tokens: TokenBook,
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn uid_of(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

impl PodWatch {
    /// Translates (if needed) and hands a pod to the fleet.
    async fn process(&mut self, pod: Arc<Pod>, force: bool) {
        let (Some(node), Some(uid)) = (node_of(&pod).map(str::to_owned), uid_of(&pod)) else {
            return;
        };
        let Ok(device) = DeviceId::new(node.clone()) else {
            return;
        };
        if !self.fleet.is_known(&node) {
            return;
        }
        let key = spec_key(&pod);
        if !force && self.translated.get(&uid) == Some(&key) && !self.failed.contains(&uid) {
            self.fleet.on_pod_refreshed(pod);
            return;
        }
        let names = referenced_objects(&pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut watches = self
            .index
            .set_pod(&uid, references::object_refs(&ns, &names));
        let read = references::read(
            &self.client,
            &pod,
            &names,
            &mut self.index,
            &mut self.tokens,
            &mut watches,
        )
        .await;
        self.watches.apply(watches);
        let refs = match read {
            Ok(r) => r,
            // the kubelet's "failed to fetch token" volume error: shown on the pod (a new
            // pod's status, a running pod's FailedMount event), retried
            Err(e @ references::ReferenceError::Token { .. })
            | Err(e @ references::ReferenceError::EmptyToken(_)) => {
                self.fleet.metrics().api_error("create_token_request");
                warn!(pod = ?pod.metadata.name, error = %e, "cannot get the pod's service account token; will retry");
                self.failed.insert(uid);
                let error = TranslationError::TokenRequestFailed(e.to_string());
                self.fleet.on_pod_translated(&device, pod, Err(error));
                return;
            }
            Err(e) => {
                self.fleet.metrics().api_error("get_pod_references");
                warn!(pod = ?pod.metadata.name, error = %e, "cannot read the pod's ConfigMaps/Secrets/tokens; will retry");
                self.failed.insert(uid);
                return;
            }
        };
        let context = self.fleet.node_context(&device);
        let result = translate_pod(&pod, &refs, &context);
        if result.is_err() {
            self.failed.insert(uid.clone());
        } else {
            self.failed.remove(&uid);
        }
        self.translated.insert(uid, key);
        self.fleet.on_pod_translated(&device, pod, result);
    }

    fn present_on(&self, device: &DeviceId) -> BTreeSet<String> {
        self.pods
            .values()
            .filter(|p| node_of(p) == Some(device.as_str()))
            .filter_map(|p| uid_of(p))
            .collect()
    }

    async fn adopt(&mut self, device: &DeviceId) {
        let pods: Vec<Arc<Pod>> = self
            .pods
            .values()
            .filter(|p| node_of(p) == Some(device.as_str()))
            .cloned()
            .collect();
        for pod in pods {
            self.process(pod, true).await;
        }
        if self.synced {
            let present = self.present_on(device);
            self.fleet.on_pods_synced(device, present);
        }
    }

    async fn on_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.init_buffer = Some(HashMap::new()),
            Event::InitApply(pod) => {
                if let (Some(buf), Some(uid)) = (self.init_buffer.as_mut(), uid_of(&pod)) {
                    if node_of(&pod).is_some() {
                        buf.insert(uid, Arc::new(pod));
                    }
                }
            }
            Event::InitDone => {
                let listed = self.init_buffer.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|uid| !listed.contains_key(*uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.forget(&uid);
                }
                self.pods = listed;
                let all: Vec<Arc<Pod>> = self.pods.values().cloned().collect();
                for pod in all {
                    self.process(pod, false).await;
                }
                self.synced = true;
                let mut by_node: HashMap<&str, BTreeSet<String>> = HashMap::new();
                for pod in self.pods.values() {
                    if let (Some(node), Some(uid)) = (node_of(pod), uid_of(pod)) {
                        by_node.entry(node).or_default().insert(uid);
                    }
                }
                // Only devices whose Node is confirmed as ours: the pods of the others were
                // skipped above, so a synced view of them would be empty and make the
                // device remove what it runs. They are synced when adopted.
                for device in self.fleet.known_devices() {
                    if !self.fleet.is_known(device.as_str()) {
                        continue;
                    }
                    let present = by_node.remove(device.as_str()).unwrap_or_default();
                    self.fleet.on_pods_synced(&device, present);
                }
                debug!(pods = self.pods.len(), "pod watch synced");
            }
            Event::Apply(pod) => {
                let Some(uid) = uid_of(&pod) else { return };
                if node_of(&pod).is_none() {
                    return;
                }
                let pod = Arc::new(pod);
                self.pods.insert(uid, pod.clone());
                self.process(pod, false).await;
            }
            Event::Delete(pod) => {
                if let Some(uid) = uid_of(&pod) {
                    self.pods.remove(&uid);
                    self.forget(&uid);
                }
            }
        }
    }

    fn forget(&mut self, uid: &str) {
        self.translated.remove(uid);
        self.failed.remove(uid);
        let watches = self.index.remove_pod(uid);
        self.watches.apply(watches);
        self.tokens.forget_pod(uid);
        self.fleet.on_pod_deleted(uid);
    }

    /// A referenced ConfigMap or Secret changed: its pods are translated again.
    async fn on_object_change(&mut self, change: ObjectChange) {
        let update = self.index.on_object(
            &change.object,
            change.resource_version.as_deref(),
            change.immutable,
        );
        self.watches.apply(update.watches);
        for uid in update.retranslate {
            if let Some(pod) = self.pods.get(&uid).cloned() {
                debug!(pod = ?pod.metadata.name, object = ?change.object, "referenced object changed");
                self.process(pod, true).await;
            }
        }
    }

    /// Pods holding a token that is due get new ones (failed pods wait for their retry).
    async fn refresh_tokens(&mut self) {
        let now = jiff::Timestamp::now().as_second();
        for uid in self.tokens.due_pods(now) {
            if self.failed.contains(&uid) {
                continue;
            }
            match self.pods.get(&uid).cloned() {
                Some(pod) => self.process(pod, true).await,
                None => self.tokens.forget_pod(&uid),
            }
        }
    }

    async fn retry_failed(&mut self) {
        let failed: Vec<String> = self.failed.iter().cloned().collect();
        for uid in failed {
            if let Some(pod) = self.pods.get(&uid).cloned() {
                self.process(pod, true).await;
            } else {
                self.failed.remove(&uid);
            }
        }
    }
}

/// Runs the pod watch until cancelled.
pub async fn run(
    client: kube::Client,
    fleet: Arc<Fleet>,
    mut requests: mpsc::UnboundedReceiver<PodWatchRequest>,
    token: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client.clone());
    // Only bound pods; those of other nodes are skipped below without any API call.
    let config = watcher::Config::default().fields("spec.nodeName!=");
    let mut stream = watcher::watcher(api, config).boxed();
    let (changes_tx, mut changes) = mpsc::unbounded_channel();
    let mut watch = PodWatch {
        client: client.clone(),
        fleet,
        pods: HashMap::new(),
        translated: HashMap::new(),
        failed: BTreeSet::new(),
        synced: false,
        init_buffer: None,
        index: ReferenceIndex::default(),
        watches: ObjectWatches::new(client, changes_tx, token.child_token()),
        tokens: TokenBook::default(),
    };
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    let mut token_check = tokio::time::interval(TOKEN_CHECK_INTERVAL);
    let mut backoff = Duration::from_millis(250);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            ev = stream.next() => match ev {
                Some(Ok(event)) => {
                    backoff = Duration::from_millis(250);
                    watch.on_event(event).await;
                }
                Some(Err(e)) => {
                    watch.fleet.metrics().api_error("watch_pods");
                    warn!(error = %e, "pod watch error; retrying");
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                None => break,
            },
            req = requests.recv() => match req {
                Some(PodWatchRequest::AdoptNode(device)) => watch.adopt(&device).await,
                None => break,
            },
            Some(change) = changes.recv() => watch.on_object_change(change).await,
            _ = retry.tick() => watch.retry_failed().await,
            _ = token_check.tick() => watch.refresh_tokens().await,
        }
    }
    watch.watches.apply(WatchChanges {
        start: Vec::new(),
        stop: watch.index.watched().cloned().collect(),
    });
}
