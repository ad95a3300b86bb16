//! What the benchmark sees through watches: Ready nodes, lease renewals, and when each
//! benchmark pod was first seen Running.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::stack::{StackResult, eventually};

/// A snapshot of the counts.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub ready_nodes: usize,
    pub pod_latencies_ms: Vec<f64>,
    node_ready: HashMap<String, bool>,
    lease_renewed: HashMap<String, jiff::Timestamp>,
    created: HashMap<String, Instant>,
    running: HashSet<String>,
}

impl Counts {
    /// Leases whose renewTime is at or after `since`.
    pub fn leases_renewed_since(&self, since: jiff::Timestamp) -> usize {
        self.lease_renewed.values().filter(|t| **t >= since).count()
    }
}

/// Watches nodes, node leases and the `bench` namespace's pods in the background.
#[derive(Debug, Clone)]
pub struct WatchCounts {
    counts: Arc<Mutex<Counts>>,
}

impl WatchCounts {
    pub fn start(client: kube::Client) -> Self {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let this = Self { counts };

        let nodes: Api<Node> = Api::all(client.clone());
        let c = this.clone();
        tokio::spawn(async move {
            let mut s = watcher(nodes, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(node)) = s.next().await {
                let ready = node
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                    .is_some_and(|c| c.status == "True");
                let mut g = c.lock();
                g.node_ready
                    .insert(node.metadata.name.unwrap_or_default(), ready);
                g.ready_nodes = g.node_ready.values().filter(|r| **r).count();
            }
        });

        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let c = this.clone();
        tokio::spawn(async move {
            let mut s = watcher(leases, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(lease)) = s.next().await {
                if let Some(t) = lease.spec.and_then(|s| s.renew_time) {
                    c.lock()
                        .lease_renewed
                        .insert(lease.metadata.name.unwrap_or_default(), t.0);
                }
            }
        });

        let pods: Api<Pod> = Api::namespaced(client, "bench");
        let c = this.clone();
        tokio::spawn(async move {
            let mut s = watcher(pods, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(pod)) = s.next().await {
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let name = pod.metadata.name.unwrap_or_default();
                let mut g = c.lock();
                if running && !g.running.contains(&name) {
                    if let Some(t0) = g.created.get(&name).copied() {
                        g.pod_latencies_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    g.running.insert(name);
                }
            }
        });
        this
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the instant just before a pod's create call.
    pub fn mark_created(&self, pod: &str) {
        self.lock().created.insert(pod.to_owned(), Instant::now());
    }

    pub fn snapshot(&self) -> Counts {
        self.lock().clone()
    }

    /// Waits until `pred` holds for the counts.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Counts) -> bool,
    ) -> StackResult<()> {
        eventually(what, timeout, || {
            let snap = self.snapshot();
            let ok = pred(&snap);
            let ready = snap.ready_nodes;
            let running = snap.pod_latencies_ms.len();
            async move {
                if ok {
                    Ok(Some(()))
                } else {
                    Err(format!("{ready} nodes Ready, {running} bench pods Running"))
                }
            }
        })
        .await
    }
}
