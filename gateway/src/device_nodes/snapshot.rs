//! What the rollout and the image pre-pull keep of each device Node from their watches
//! (pure): labels, the agent version the Node reports, its architecture, its agent-update
//! progress and its pre-pull annotation. Small, so a fleet-wide watch costs little memory.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use crate::agent_rollout::progress::{AGENT_UPDATE_ANNOTATION, NodeProgress};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    pub labels: BTreeMap<String, String>,
    /// `status.nodeInfo.kubeletVersion`: `v1.32.0+edge-agent.<the agent's version>`.
    pub kubelet_version: String,
    /// `status.nodeInfo.architecture` (`arm64`, `arm`, `amd64`).
    pub arch: String,
    pub progress: Option<NodeProgress>,
    /// The image pre-pull annotation as written ([`crate::image_prepull`]).
    pub image_prepull: Option<String>,
}

impl NodeSnapshot {
    pub fn of(node: &Node) -> (String, Self) {
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let snapshot = Self {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            kubelet_version: info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
            arch: info.map(|i| i.architecture.clone()).unwrap_or_default(),
            progress: node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(AGENT_UPDATE_ANNOTATION))
                .and_then(|v| NodeProgress::parse(v)),
            image_prepull: node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::image_prepull::NODE_ANNOTATION))
                .cloned(),
        };
        (node.metadata.name.clone().unwrap_or_default(), snapshot)
    }
}

/// The watch of the device Nodes (those the gateway created, by their label).
pub fn device_node_watch(
    client: kube::Client,
) -> impl futures::Stream<
    Item = Result<kube::runtime::watcher::Event<Node>, kube::runtime::watcher::Error>,
> + Send {
    use kube::runtime::{WatchStreamExt, watcher};
    let nodes: kube::Api<Node> = kube::Api::all(client);
    watcher::watcher(
        nodes,
        watcher::Config::default().labels(&format!(
            "{}={}",
            crate::node_ownership::MANAGED_BY_LABEL,
            crate::node_ownership::MANAGED_BY_VALUE
        )),
    )
    .default_backoff()
}

/// The Nodes of one watch, rebuilt on every (re)list.
#[derive(Debug, Default)]
pub struct NodeSnapshots {
    nodes: BTreeMap<String, NodeSnapshot>,
    relisting: Option<BTreeMap<String, NodeSnapshot>>,
    listed: bool,
}

impl NodeSnapshots {
    /// Files one item of [`device_node_watch`] (`who` names the controller in the log).
    pub fn on_watch(
        &mut self,
        item: Result<kube::runtime::watcher::Event<Node>, kube::runtime::watcher::Error>,
        who: &str,
    ) {
        match item {
            Ok(event) => self.on_event(event),
            Err(e) => tracing::warn!(error = %e, "{who}: the Node watch failed; retrying"),
        }
    }

    /// The watch has listed once (before that an empty view means nothing).
    pub fn listed(&self) -> bool {
        self.listed
    }

    pub fn on_event(&mut self, event: kube::runtime::watcher::Event<Node>) {
        use kube::runtime::watcher::Event;
        match event {
            Event::Init => self.relisting = Some(BTreeMap::new()),
            Event::InitApply(node) => {
                let (name, s) = NodeSnapshot::of(&node);
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name, s);
            }
            Event::InitDone => {
                if let Some(all) = self.relisting.take() {
                    self.nodes = all;
                }
                self.listed = true;
            }
            Event::Apply(node) => {
                let (name, s) = NodeSnapshot::of(&node);
                self.nodes.insert(name, s);
            }
            Event::Delete(node) => {
                let (name, _) = NodeSnapshot::of(&node);
                self.nodes.remove(&name);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&NodeSnapshot> {
        self.nodes.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &NodeSnapshot)> {
        self.nodes.iter()
    }

    /// Whether the first list has arrived.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_rollout::progress::NodePhase;
    use kube::runtime::watcher::Event;

    fn node(name: &str, version: &str, progress: Option<&NodeProgress>) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {"ring": "canary"},
                "annotations": progress.map(|p| serde_json::json!({AGENT_UPDATE_ANNOTATION: p.encode()})),
            },
            "status": {"nodeInfo": {
                "kubeletVersion": version, "architecture": "arm64",
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "", "containerRuntimeVersion": "", "kubeProxyVersion": "",
                "operatingSystem": "linux"
            }}
        }))
        .unwrap()
    }

    #[test]
    fn a_relist_replaces_every_node_and_events_keep_it_current() {
        let mut nodes = NodeSnapshots::default();
        nodes.on_event(Event::Apply(node("gone", "1.0", None)));
        nodes.on_event(Event::Init);
        let progress = NodeProgress::new("2.0", NodePhase::Staged, 5);
        nodes.on_event(Event::InitApply(node("a", "1.0", Some(&progress))));
        assert!(
            nodes.get("gone").is_some(),
            "the old list serves until the new is whole"
        );
        nodes.on_event(Event::InitDone);
        assert!(nodes.get("gone").is_none());
        let a = nodes.get("a").unwrap();
        assert_eq!(
            (a.kubelet_version.as_str(), a.arch.as_str()),
            ("1.0", "arm64")
        );
        assert_eq!(a.progress.as_ref(), Some(&progress));
        assert_eq!(a.labels.get("ring").map(String::as_str), Some("canary"));
        nodes.on_event(Event::Apply(node("a", "2.0", None)));
        assert_eq!(nodes.get("a").unwrap().kubelet_version, "2.0");
        nodes.on_event(Event::Delete(node("a", "2.0", None)));
        assert!(nodes.is_empty());
    }
}
