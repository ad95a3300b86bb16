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
use serde::de::DeserializeOwned;

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
        let this = Self {
            counts: Arc::new(Mutex::new(Counts::default())),
        };
        this.follow(Api::<Node>::all(client.clone()), |g, node| {
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True");
            let was = g
                .node_ready
                .insert(node.metadata.name.unwrap_or_default(), ready)
                .unwrap_or(false);
            // Kept incrementally: recounting 10,000 nodes per event would load the
            // machine the gateway is measured on.
            match (was, ready) {
                (false, true) => g.ready_nodes += 1,
                (true, false) => g.ready_nodes -= 1,
                _ => {}
            }
        });
        this.follow(
            Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
            |g, lease| {
                if let Some(t) = lease.spec.and_then(|s| s.renew_time) {
                    g.lease_renewed
                        .insert(lease.metadata.name.unwrap_or_default(), t.0);
                }
            },
        );
        this.follow(Api::<Pod>::namespaced(client, "bench"), |g, pod| {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let name = pod.metadata.name.unwrap_or_default();
            if running && !g.running.contains(&name) {
                if let Some(t0) = g.created.get(&name).copied() {
                    g.pod_latencies_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                g.running.insert(name);
            }
        });
        this
    }

    /// Applies every object the watch sees to the counts, in the background. Watch
    /// errors are retried with back-off (they do not end the watch).
    fn follow<K>(&self, api: Api<K>, apply: impl Fn(&mut Counts, K) + Send + 'static)
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let this = self.clone();
        tokio::spawn(async move {
            let mut objects = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(next) = objects.next().await {
                match next {
                    Ok(obj) => apply(&mut this.lock(), obj),
                    Err(e) => tracing::debug!(error = %e, "benchmark watch error; retrying"),
                }
            }
        });
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
