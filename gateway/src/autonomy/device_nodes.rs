//! The device Nodes' names, labels and annotations, kept current by one watch over the
//! Nodes the gateway manages (its managed-by label), for budget lookups. A user's
//! `kubectl annotate node pi-01 edge-kube.io/autonomy=72h` is seen within a second.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::budget::DeviceNodeView;
use crate::node_ownership::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// A read handle on the watched device Nodes.
#[derive(Clone)]
pub struct DeviceNodes {
    store: Store<Node>,
}

impl std::fmt::Debug for DeviceNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceNodes")
            .field("nodes", &self.store.state().len())
            .finish()
    }
}

fn view(node: &Node) -> DeviceNodeView {
    DeviceNodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        annotations: node.metadata.annotations.clone().unwrap_or_default(),
    }
}

impl DeviceNodes {
    /// Starts the watch; it runs until `token` is cancelled and retries with back-off.
    pub fn spawn(client: kube::Client, token: CancellationToken) -> Self {
        let (store, writer) = reflector::store();
        let api: Api<Node> = Api::all(client);
        let config =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
        let stream = reflector::reflector(writer, watcher::watcher(api, config))
            .default_backoff()
            .touched_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    next = stream.next() => match next {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            warn!(error = %e, "device node watch error; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        None => break,
                    },
                }
            }
        });
        Self { store }
    }

    /// Every device Node as last seen.
    pub fn nodes(&self) -> Vec<std::sync::Arc<Node>> {
        self.store.state()
    }

    /// What the budget logic needs of every device Node.
    pub fn views(&self) -> Vec<DeviceNodeView> {
        self.store.state().iter().map(|n| view(n)).collect()
    }

    /// Waits until the first list has arrived (or `timeout` passes).
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
