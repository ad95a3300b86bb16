//! The autonomy budget: how long a device may be offline before Kubernetes may move its
//! pods. Read from a Node's annotation or label [`AUTONOMY_KEY`] (annotation first), a
//! pod's own annotation, or the gateway's `--default-autonomy`; and which budget applies
//! to a pod that is not bound yet (pure).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::parse_duration;

/// Node annotation or label (and pod annotation) that sets the budget, e.g. `72h`.
/// On a pod, the value `off` leaves the pod's tolerations to Kubernetes' defaults.
pub const AUTONOMY_KEY: &str = "edge-kube.io/autonomy";
/// The pod annotation value that opts a pod out.
pub const AUTONOMY_OFF: &str = "off";

/// Where a budget came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetSource {
    PodAnnotation,
    NodeAnnotation,
    NodeLabel,
    GatewayDefault,
}

/// A budget and where it came from. `invalid` holds an unreadable value that was
/// ignored (the default applies), for a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub duration: Duration,
    pub source: BudgetSource,
    pub invalid: Option<String>,
}

/// What the budget logic needs to know of a device Node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceNodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The budget of one device Node.
pub fn node_budget(node: &DeviceNodeView, default: Duration) -> Budget {
    let mut invalid = None;
    for (values, source) in [
        (&node.annotations, BudgetSource::NodeAnnotation),
        (&node.labels, BudgetSource::NodeLabel),
    ] {
        if let Some(raw) = values.get(AUTONOMY_KEY) {
            match parse_duration(raw) {
                Ok(duration) => {
                    return Budget {
                        duration,
                        source,
                        invalid,
                    };
                }
                Err(_) => invalid = Some(raw.clone()),
            }
        }
    }
    Budget {
        duration: default,
        source: BudgetSource::GatewayDefault,
        invalid,
    }
}

/// What a pod asks for through its own annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodAutonomy {
    /// No annotation: the nodes' budget applies.
    FromNodes,
    /// `off`: Kubernetes' defaults apply.
    Off,
    /// A duration of its own.
    Own(Duration),
    /// An unreadable value (the nodes' budget applies).
    Invalid(String),
}

pub fn pod_autonomy(annotations: Option<&BTreeMap<String, String>>) -> PodAutonomy {
    match annotations.and_then(|a| a.get(AUTONOMY_KEY)) {
        None => PodAutonomy::FromNodes,
        Some(v) if v.trim().eq_ignore_ascii_case(AUTONOMY_OFF) => PodAutonomy::Off,
        Some(v) => match parse_duration(v) {
            Ok(d) => PodAutonomy::Own(d),
            Err(_) => PodAutonomy::Invalid(v.clone()),
        },
    }
}

/// The budget for a pod being created, before the scheduler picks its node: the node it
/// names (`spec.nodeName`), else the largest budget among the device Nodes its
/// `nodeSelector` allows (the pod may land on any of them), else the default.
pub fn budget_for_unbound_pod(
    node_name: Option<&str>,
    node_selector: Option<&BTreeMap<String, String>>,
    devices: &[DeviceNodeView],
    default: Duration,
) -> Budget {
    if let Some(name) = node_name.filter(|n| !n.is_empty()) {
        return devices
            .iter()
            .find(|n| n.name == name)
            .map(|n| node_budget(n, default))
            .unwrap_or(Budget {
                duration: default,
                source: BudgetSource::GatewayDefault,
                invalid: None,
            });
    }
    let selector = node_selector.cloned().unwrap_or_default();
    devices
        .iter()
        .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
        .map(|n| node_budget(n, default))
        .max_by_key(|b| b.duration)
        .unwrap_or(Budget {
            duration: default,
            source: BudgetSource::GatewayDefault,
            invalid: None,
        })
}

#[cfg(test)]
mod tests;
