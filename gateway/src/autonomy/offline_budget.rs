//! How much of an offline device's autonomy budget is left (pure), and the loop that
//! shows it: the Node annotation [`AUTONOMY_EXPIRES_KEY`] (when Kubernetes may start
//! moving its pods) and the gateway's `/metrics` gauges of devices offline within and
//! over their budget.
//!
//! The clock is Kubernetes' own: the node lifecycle controller taints an unreachable or
//! not-ready Node `NoExecute` with the time it did so, and a pod is evicted once its
//! toleration's seconds have passed since then.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::budget::{DeviceNodeView, node_budget};
use super::device_nodes::DeviceNodes;
use super::tolerations::OFFLINE_TAINT_KEYS;
use crate::metrics::Metrics;

/// Node annotation: when the device's budget runs out (RFC 3339), while it is offline.
pub const AUTONOMY_EXPIRES_KEY: &str = "edge-kube.io/autonomy-expires";

/// An offline device's budget, measured from its NoExecute taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineBudget {
    /// When the node lifecycle controller tainted the Node.
    pub tainted_at: Timestamp,
    pub expires: Timestamp,
    /// Budget left now (zero when over).
    pub remaining: Duration,
}

impl OfflineBudget {
    pub fn is_over(&self) -> bool {
        self.remaining.is_zero()
    }
}

/// The budget state of a device Node: `None` while it carries no not-ready/unreachable
/// NoExecute taint (online, or not yet marked).
pub fn offline_budget(node: &Node, default: Duration, now: Timestamp) -> Option<OfflineBudget> {
    let tainted_at = node
        .spec
        .as_ref()?
        .taints
        .as_ref()?
        .iter()
        .filter(|t| t.effect == "NoExecute" && OFFLINE_TAINT_KEYS.contains(&t.key.as_str()))
        .filter_map(|t| t.time_added.as_ref())
        .map(|t| t.0)
        .min()?;
    let view = DeviceNodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        annotations: node.metadata.annotations.clone().unwrap_or_default(),
    };
    let budget = node_budget(&view, default).duration;
    let span = jiff::SignedDuration::try_from(budget).unwrap_or(jiff::SignedDuration::MAX);
    let expires = tainted_at.checked_add(span).unwrap_or(Timestamp::MAX);
    let remaining = expires
        .duration_since(now)
        .try_into()
        .unwrap_or(Duration::ZERO);
    Some(OfflineBudget {
        tainted_at,
        expires,
        remaining,
    })
}

/// The value [`AUTONOMY_EXPIRES_KEY`] should have on the Node (`None`: absent).
pub fn expires_annotation(budget: Option<&OfflineBudget>) -> Option<String> {
    budget.map(|b| b.expires.to_string())
}

/// Every few seconds: sets or clears each device Node's expiry annotation when it
/// changes, and the gauges of devices offline within and over budget.
pub async fn run(
    client: kube::Client,
    nodes: DeviceNodes,
    default: Duration,
    metrics: Arc<Metrics>,
    gate: crate::sharding::ShardGate,
    token: CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = Timestamp::now();
        let (mut within, mut over) = (0i64, 0i64);
        for node in nodes.nodes() {
            let budget = offline_budget(&node, default, now);
            match &budget {
                Some(b) if b.is_over() => over += 1,
                Some(_) => within += 1,
                None => {}
            }
            let want = expires_annotation(budget.as_ref());
            let have = node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(AUTONOMY_EXPIRES_KEY))
                .cloned();
            if want == have {
                continue;
            }
            let Some(name) = node.metadata.name.as_deref() else {
                continue;
            };
            // sharded gateways: only the replica that owns the device annotates its Node
            if gate.is_sharded()
                && !edge_protocol::DeviceId::new(name).is_ok_and(|d| gate.may_write(&d))
            {
                continue;
            }
            let patch =
                serde_json::json!({"metadata": {"annotations": {AUTONOMY_EXPIRES_KEY: want}}});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => debug!(node = name, expires = ?want, "autonomy budget annotation"),
                Err(e) => {
                    metrics.api_error("patch_node_autonomy");
                    warn!(node = name, error = %e, "could not annotate the autonomy budget");
                }
            }
        }
        metrics.devices_offline_within_budget.set(within);
        metrics.devices_offline_over_budget.set(over);
    }
}

#[cfg(test)]
mod tests;
