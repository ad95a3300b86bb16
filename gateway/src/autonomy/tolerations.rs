//! The NoExecute tolerations that carry a device's autonomy budget (pure): which pods
//! are for devices, which tolerations are the cluster's defaults (added by the API
//! server's DefaultTolerationSeconds plugin before any webhook runs) and may be
//! replaced, and which are the pod's own and are kept.

use k8s_openapi::api::core::v1::Toleration;

/// Taint the node lifecycle controller puts on a node whose Lease stopped.
pub const UNREACHABLE_TAINT_KEY: &str = "node.kubernetes.io/unreachable";
/// Taint the node lifecycle controller puts on a node whose Ready condition is False.
pub const NOT_READY_TAINT_KEY: &str = "node.kubernetes.io/not-ready";
/// The taints the budget covers.
pub const OFFLINE_TAINT_KEYS: [&str; 2] = [NOT_READY_TAINT_KEY, UNREACHABLE_TAINT_KEY];

/// A taint as the node carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taint<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub effect: &'a str,
}

/// Whether `t` tolerates `taint`, with the scheduler's rules: an empty effect matches
/// every effect, an empty key with `Exists` every key, `Exists` every value, `Equal`
/// (the default operator) the same value.
pub fn tolerates(t: &Toleration, taint: Taint<'_>) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    let operator = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or_default() == taint.value,
        _ => false,
    }
}

/// The toleration the API server's DefaultTolerationSeconds plugin adds for `key`.
fn is_cluster_default(t: &Toleration, key: &str, default_seconds: i64) -> bool {
    t.key.as_deref() == Some(key)
        && t.operator.as_deref() == Some("Exists")
        && t.effect.as_deref() == Some("NoExecute")
        && t.value.as_deref().unwrap_or_default().is_empty()
        && t.toleration_seconds == Some(default_seconds)
}

/// The tolerations a device pod should have: the pod's own kept, the cluster's default
/// ones for not-ready/unreachable replaced (or missing ones added) with
/// `budget_seconds`. `None` when nothing changes (the pod brings its own for both).
pub fn with_budget(
    tolerations: &[Toleration],
    budget_seconds: i64,
    cluster_default_seconds: i64,
) -> Option<Vec<Toleration>> {
    let mut out = tolerations.to_vec();
    let mut changed = false;
    for key in OFFLINE_TAINT_KEYS {
        let taint = Taint {
            key,
            value: "",
            effect: "NoExecute",
        };
        let matching: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, t)| tolerates(t, taint))
            .map(|(i, _)| i)
            .collect();
        let own = matching
            .iter()
            .any(|&i| !is_cluster_default(&out[i], key, cluster_default_seconds));
        if own {
            continue;
        }
        let ours = Toleration {
            key: Some(key.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoExecute".to_owned()),
            toleration_seconds: Some(budget_seconds),
            value: None,
        };
        match matching.first() {
            Some(&i) if out[i] == ours => {}
            Some(&i) => {
                out[i] = ours;
                changed = true;
            }
            None => {
                out.push(ours);
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests;
