//! One admission review of a pod (pure): is it for devices, which budget applies, and
//! the JSON patch that sets its not-ready/unreachable tolerations. Pods are never
//! refused: at worst they keep Kubernetes' defaults.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use super::budget::{
    Budget, BudgetSource, DeviceNodeView, PodAutonomy, budget_for_unbound_pod, pod_autonomy,
};
use super::tolerations::{Taint, tolerates, with_budget};
use crate::node_object::PROVIDER_TAINT_KEY;

/// The gateway's settings for admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutonomyPolicy {
    /// `--default-autonomy`.
    pub default_budget: Duration,
    /// The API server's `--default-not-ready-toleration-seconds` /
    /// `--default-unreachable-toleration-seconds` (300 unless changed): tolerations with
    /// exactly this value were added by the API server, not chosen by the pod.
    pub cluster_default_toleration_seconds: i64,
    /// The provider in the device taint `virtual-kubelet.io/provider=<provider>:NoSchedule`.
    pub provider: String,
    /// Whether device Nodes carry that taint (`--no-taint` turns it off).
    pub taint: bool,
}

/// What the review decided, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionDecision {
    /// Not a pod creation, or a pod that cannot land on a device.
    NotForDevices,
    /// The pod's annotation says `off`.
    OptedOut,
    /// The pod brings its own not-ready and unreachable tolerations.
    KeepsOwn,
    /// Tolerations set to the budget.
    Mutated { seconds: i64, source: BudgetSource },
    /// The request could not be read; the pod is admitted unchanged.
    Unreadable(String),
}

impl AdmissionDecision {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AdmissionDecision::NotForDevices => "not_for_devices",
            AdmissionDecision::OptedOut => "opted_out",
            AdmissionDecision::KeepsOwn => "keeps_own",
            AdmissionDecision::Mutated { .. } => "mutated",
            AdmissionDecision::Unreadable(_) => "unreadable",
        }
    }
}

/// Whether `pod` can be scheduled onto a device: it tolerates the device taint (when
/// device Nodes are tainted), or names a device Node, or (untainted) selects one.
fn is_for_devices(pod: &Pod, devices: &[DeviceNodeView], policy: &AutonomyPolicy) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return devices.iter().any(|d| d.name == name);
    }
    if policy.taint {
        let taint = Taint {
            key: PROVIDER_TAINT_KEY,
            value: &policy.provider,
            effect: "NoSchedule",
        };
        return spec
            .tolerations
            .iter()
            .flatten()
            .any(|t| tolerates(t, taint));
    }
    let selector = spec.node_selector.clone().unwrap_or_default();
    !selector.is_empty()
        && devices
            .iter()
            .any(|d| selector.iter().all(|(k, v)| d.labels.get(k) == Some(v)))
}

/// Reviews one pod admission.
pub fn review_pod(
    request: &AdmissionRequest<Pod>,
    devices: &[DeviceNodeView],
    policy: &AutonomyPolicy,
) -> (AdmissionResponse, AdmissionDecision) {
    let allow = AdmissionResponse::from(request);
    let Some(pod) = request.object.as_ref() else {
        return (allow, AdmissionDecision::NotForDevices);
    };
    if request.operation != Operation::Create || !is_for_devices(pod, devices, policy) {
        return (allow, AdmissionDecision::NotForDevices);
    }
    let budget = match pod_autonomy(pod.metadata.annotations.as_ref()) {
        PodAutonomy::Off => return (allow, AdmissionDecision::OptedOut),
        PodAutonomy::Own(duration) => Budget {
            duration,
            source: BudgetSource::PodAnnotation,
            invalid: None,
        },
        PodAutonomy::FromNodes | PodAutonomy::Invalid(_) => {
            let spec = pod.spec.as_ref();
            budget_for_unbound_pod(
                spec.and_then(|s| s.node_name.as_deref()),
                spec.and_then(|s| s.node_selector.as_ref()),
                devices,
                policy.default_budget,
            )
        }
    };
    let seconds = i64::try_from(budget.duration.as_secs()).unwrap_or(i64::MAX);
    let current = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let Some(tolerations) =
        with_budget(&current, seconds, policy.cluster_default_toleration_seconds)
    else {
        return (allow, AdmissionDecision::KeepsOwn);
    };
    let op = if pod.spec.as_ref().is_some_and(|s| s.tolerations.is_some()) {
        "replace"
    } else {
        "add"
    };
    let patch = serde_json::json!([{"op": op, "path": "/spec/tolerations", "value": tolerations}]);
    let patched = serde_json::from_value::<json_patch::Patch>(patch)
        .map_err(|e| e.to_string())
        .and_then(|p| allow.clone().with_patch(p).map_err(|e| e.to_string()));
    match patched {
        Ok(response) => (
            response,
            AdmissionDecision::Mutated {
                seconds,
                source: budget.source,
            },
        ),
        Err(e) => (allow, AdmissionDecision::Unreadable(e)),
    }
}

#[cfg(test)]
mod tests;
