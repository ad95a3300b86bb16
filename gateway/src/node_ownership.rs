//! Which Nodes the gateway may touch: only the ones it created.
//!
//! A device chooses its own id, and the id is the Node name. Without this check a device
//! named like a real node (`worker-1`) would get that node's labels merged, its status
//! and Lease patched, and its pods and Secrets delivered. Every Node the gateway creates
//! carries [`MANAGED_BY_LABEL`]; an existing Node without it is refused.

use k8s_openapi::api::core::v1::Node;

use crate::node_object::{NodeSettings, PROVIDER_TAINT_KEY};

/// Set on every Node the gateway creates (`kubectl get nodes -l edge-kube.io/managed-by`).
pub const MANAGED_BY_LABEL: &str = "edge-kube.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "edge-gateway";

/// Whose Node this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOwnership {
    /// Created by an edge-gateway (carries the managed-by label).
    Ours,
    /// Created by an edge-gateway from before the managed-by label: `type=virtual-kubelet`
    /// and this gateway's provider taint. Adopted: the next label patch adds the label.
    Legacy,
    /// Anything else (a real kubelet's node, another provider's): never touched.
    Foreign { why: String },
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Decides whether the gateway may manage `node`.
pub fn ownership(node: &Node, settings: &NodeSettings) -> NodeOwnership {
    match label(node, MANAGED_BY_LABEL) {
        Some(MANAGED_BY_VALUE) => return NodeOwnership::Ours,
        Some(other) => {
            return NodeOwnership::Foreign {
                why: format!("the Node is managed by {other:?} ({MANAGED_BY_LABEL})"),
            };
        }
        None => {}
    }
    let virtual_kubelet = label(node, "type") == Some("virtual-kubelet");
    let our_taint = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| {
            taints.iter().any(|t| {
                t.key == PROVIDER_TAINT_KEY
                    && t.value.as_deref() == Some(settings.provider.as_str())
            })
        });
    if virtual_kubelet && (our_taint || !settings.taint) {
        NodeOwnership::Legacy
    } else {
        NodeOwnership::Foreign {
            why: format!(
                "the Node exists and was not created by edge-gateway (no {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} label)"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
