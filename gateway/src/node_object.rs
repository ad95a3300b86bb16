//! What a device's hello ([`NodeReport`]) says about its Node, and the gateway-wide
//! Node settings: the labels (the device's, filtered, and ours), the board family, the
//! device's own address. Pure functions; the Node object and its status are built and
//! written in `kube_writer/node.rs` and `kube_writer/node_status.rs`.

use std::collections::BTreeMap;

use edge_protocol::{DeviceId, NodeAddressKind, NodeReport};

/// Taint key put on every device node unless disabled.
pub const PROVIDER_TAINT_KEY: &str = "virtual-kubelet.io/provider";

/// Gateway-wide settings that go into every Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// Provider name in the taint `virtual-kubelet.io/provider=<provider>:NoSchedule`.
    pub provider: String,
    /// Whether to put the provider taint on new nodes.
    pub taint: bool,
    /// InternalIP of every Node: where the API server reaches the gateway's kubelet API.
    pub node_address: String,
    /// Port of the gateway's kubelet API.
    pub kubelet_port: u16,
}

/// Whether a label key lies in a namespace a device may not set.
pub fn is_reserved_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")))
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    edge_protocol::DeviceId::new(s).is_ok()
}

/// Whether `key` is a syntactically valid label key (`[prefix/]name`).
pub fn is_valid_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253 && is_dns_subdomain(prefix) && is_label_name(name)
        }
        None => is_label_name(key),
    }
}

/// Whether `value` is a valid label value (empty allowed).
pub fn is_valid_label_value(value: &str) -> bool {
    value.is_empty() || is_label_name(value)
}

/// Turns free text (a board model) into a valid label value.
pub fn sanitize_label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if c == '-' && collapsed.ends_with('-') {
            continue;
        }
        collapsed.push(c);
    }
    let trimmed: String = collapsed.chars().take(63).collect();
    trimmed
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The Node's labels: ours first, then what the device asks for (reserved namespaces,
/// invalid labels and attempts to override ours are dropped; the dropped keys are returned).
pub fn node_labels(
    device: &DeviceId,
    report: &NodeReport,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut labels = BTreeMap::new();
    let mut dropped = Vec::new();
    for (k, v) in &report.labels {
        if is_reserved_label(k)
            || !is_valid_label_key(k)
            || !is_valid_label_value(v)
            || k == "type"
            || k == BOARD_FAMILY_LABEL
            || k == crate::node_ownership::MANAGED_BY_LABEL
        {
            dropped.push(k.clone());
            continue;
        }
        labels.insert(k.clone(), v.clone());
    }
    let arch = if report.architecture.is_empty() {
        "unknown".to_owned()
    } else {
        sanitize_label_value(&report.architecture)
    };
    let os = if report.operating_system.is_empty() {
        "linux".to_owned()
    } else {
        sanitize_label_value(&report.operating_system)
    };
    labels.insert("kubernetes.io/arch".to_owned(), arch);
    labels.insert("kubernetes.io/os".to_owned(), os);
    labels.insert(
        "kubernetes.io/hostname".to_owned(),
        sanitize_label_value(device.as_str()),
    );
    if let Some(board) = report.board_model.as_deref().map(sanitize_label_value) {
        if !board.is_empty() {
            labels.insert("node.kubernetes.io/instance-type".to_owned(), board);
        }
    }
    labels.insert(
        BOARD_FAMILY_LABEL.to_owned(),
        board_family(report.board_model.as_deref()).to_owned(),
    );
    labels.insert("type".to_owned(), "virtual-kubelet".to_owned());
    labels.insert(
        crate::node_ownership::MANAGED_BY_LABEL.to_owned(),
        crate::node_ownership::MANAGED_BY_VALUE.to_owned(),
    );
    (labels, dropped)
}

/// Node label grouping board models, so one selector covers every Raspberry Pi (or
/// Jetson) whatever its exact model string in `node.kubernetes.io/instance-type`.
pub const BOARD_FAMILY_LABEL: &str = "edge-kube.io/board-family";

/// `raspberry-pi`, `jetson` or `generic`, from `/proc/device-tree/model`.
pub fn board_family(board_model: Option<&str>) -> &'static str {
    let model = board_model.unwrap_or_default().to_ascii_lowercase();
    if model.contains("raspberry pi") {
        "raspberry-pi"
    } else if model.contains("jetson") {
        "jetson"
    } else {
        "generic"
    }
}

/// The device's own InternalIP, if it reported one (pods on it use this as hostIP).
pub fn device_internal_ip(report: &NodeReport) -> Option<String> {
    report
        .addresses
        .iter()
        .find(|a| a.kind == NodeAddressKind::InternalIP)
        .map(|a| a.address.clone())
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
