//! What the benchmark sees through watches: Ready and schedulable nodes, lease renewals,
//! and when each benchmark pod was first seen bound to a node and Running.

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

/// Pods slower than this to Running are named in the output.
const SLOW_POD_MS: f64 = 5000.0;

/// The taint every edge node carries, which the benchmark pods tolerate.
const PROVIDER_TAINT: &str = "virtual-kubelet.io/provider";

/// What the counts keep of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NodeState {
    ready: bool,
    /// Ready and without a taint besides the provider's. A real API server taints a new
    /// node `node.kubernetes.io/not-ready:NoSchedule` (admission plugin
    /// TaintNodesByCondition) until the node lifecycle controller sees it Ready and
    /// removes the taint; until then the scheduler places no pod there.
    schedulable: bool,
}

/// A snapshot of the counts.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub ready_nodes: usize,
    pub schedulable_nodes: usize,
    pub pod_latencies_ms: Vec<f64>,
    /// From the create call to the first watch event with `spec.nodeName` (the
    /// scheduler's part of the latency).
    pub pod_scheduled_ms: Vec<f64>,
    nodes: HashMap<String, NodeState>,
    lease_renewed: HashMap<String, jiff::Timestamp>,
    created: HashMap<String, Instant>,
    running: HashSet<String>,
    /// Create → bound, ms, by pod.
    scheduled: HashMap<String, f64>,
}

impl Counts {
    /// Leases whose renewTime is at or after `since`.
    pub fn leases_renewed_since(&self, since: jiff::Timestamp) -> usize {
        self.lease_renewed.values().filter(|t| **t >= since).count()
    }

    /// Names of the schedulable nodes.
    pub fn schedulable_node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, s)| s.schedulable)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
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
            let untainted = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_none_or(|t| t.iter().all(|t| t.key == PROVIDER_TAINT));
            let now = NodeState {
                ready,
                schedulable: ready && untainted,
            };
            let was = g
                .nodes
                .insert(node.metadata.name.unwrap_or_default(), now)
                .unwrap_or_default();
            // Kept incrementally: recounting 10,000 nodes per event would load the
            // machine the gateway is measured on.
            match (was.ready, now.ready) {
                (false, true) => g.ready_nodes += 1,
                (true, false) => g.ready_nodes -= 1,
                _ => {}
            }
            match (was.schedulable, now.schedulable) {
                (false, true) => g.schedulable_nodes += 1,
                (true, false) => g.schedulable_nodes -= 1,
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
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some();
            if bound
                && !g.scheduled.contains_key(&name)
                && let Some(t0) = g.created.get(&name).copied()
            {
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                g.pod_scheduled_ms.push(ms);
                g.scheduled.insert(name.clone(), ms);
            }
            if running && !g.running.contains(&name) {
                if let Some(t0) = g.created.get(&name).copied() {
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    g.pod_latencies_ms.push(ms);
                    if ms > SLOW_POD_MS {
                        let bound_ms = g.scheduled.get(&name).copied().unwrap_or(f64::NAN);
                        eprintln!(
                            "[fleet-bench] slow pod {name}: bound after {bound_ms:.0} ms, \
                             Running after {ms:.0} ms"
                        );
                    }
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

    /// Nodes Ready and schedulable now (without copying the counts).
    pub fn node_counts(&self) -> (usize, usize) {
        let g = self.lock();
        (g.ready_nodes, g.schedulable_nodes)
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
            // Under the lock, not on a copy: copying 10,000 nodes' entries five times a
            // second would load the machine the figures are taken on.
            let (ok, ready, schedulable, running) = {
                let g = self.lock();
                (
                    pred(&g),
                    g.ready_nodes,
                    g.schedulable_nodes,
                    g.pod_latencies_ms.len(),
                )
            };
            async move {
                if ok {
                    Ok(Some(()))
                } else {
                    Err(format!(
                        "{ready} nodes Ready, {schedulable} schedulable, {running} bench pods \
                         Running"
                    ))
                }
            }
        })
        .await
    }
}
