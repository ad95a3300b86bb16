//! The downward API: `fieldRef` and `resourceFieldRef` values, as the kubelet computes them.

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};

use super::{NodeContext, TranslationError};
use crate::quantity::Quantity;

/// Resolves a `fieldRef` against the pod and the node it runs on.
pub fn field_value(
    pod: &Pod,
    node: &NodeContext,
    sel: &ObjectFieldSelector,
) -> Result<String, TranslationError> {
    let meta = &pod.metadata;
    let path = sel.field_path.as_str();
    let unsupported = || TranslationError::UnsupportedField(path.to_owned());
    let map_value = |prefix: &str, map: &Option<std::collections::BTreeMap<String, String>>| {
        let key = path
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")))
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")));
        key.map(|k| {
            map.as_ref()
                .and_then(|m| m.get(k))
                .cloned()
                .unwrap_or_default()
        })
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => node.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs" => {
            node.host_ip.clone().unwrap_or_default()
        }
        "metadata.labels" => render_map(meta.labels.as_ref()),
        "metadata.annotations" => render_map(meta.annotations.as_ref()),
        p if p.starts_with("metadata.labels[") => {
            map_value("metadata.labels", &meta.labels).ok_or_else(unsupported)?
        }
        p if p.starts_with("metadata.annotations[") => {
            map_value("metadata.annotations", &meta.annotations).ok_or_else(unsupported)?
        }
        _ => return Err(unsupported()),
    };
    Ok(value)
}

/// `key="value"` lines, sorted, as the downward API renders whole label maps in files.
fn render_map(map: Option<&std::collections::BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// Resolves a `resourceFieldRef` for `container` (limits default to the node's allocatable).
pub fn resource_value(
    container: &Container,
    node: &NodeContext,
    sel: &ResourceFieldSelector,
) -> Result<String, TranslationError> {
    let res = container.resources.as_ref();
    let get = |limits: bool, name: &str| -> Result<Option<Quantity>, TranslationError> {
        let map = if limits {
            res.and_then(|r| r.limits.as_ref())
        } else {
            res.and_then(|r| r.requests.as_ref())
        };
        map.and_then(|m| m.get(name))
            .map(|q| Quantity::parse(&q.0).map_err(TranslationError::Quantity))
            .transpose()
    };
    let divisor = match &sel.divisor {
        Some(d) => Quantity::parse(&d.0).map_err(TranslationError::Quantity)?,
        None => Quantity::from_units(1),
    };
    let allocatable_cpu = Quantity::from_millis(node.allocatable_cpu_millis);
    let allocatable_memory = Quantity::from_units(node.allocatable_memory_bytes);
    let allocatable_storage = Quantity::from_units(node.allocatable_storage_bytes);
    let value = match sel.resource.as_str() {
        "limits.cpu" => get(true, "cpu")?.unwrap_or(allocatable_cpu),
        "limits.memory" => get(true, "memory")?.unwrap_or(allocatable_memory),
        "limits.ephemeral-storage" => {
            get(true, "ephemeral-storage")?.unwrap_or(allocatable_storage)
        }
        "requests.cpu" => get(false, "cpu")?
            .or(get(true, "cpu")?)
            .unwrap_or(Quantity::from_units(0)),
        "requests.memory" => get(false, "memory")?
            .or(get(true, "memory")?)
            .unwrap_or(Quantity::from_units(0)),
        "requests.ephemeral-storage" => get(false, "ephemeral-storage")?
            .or(get(true, "ephemeral-storage")?)
            .unwrap_or(Quantity::from_units(0)),
        other => return Err(TranslationError::UnsupportedField(other.to_owned())),
    };
    let out = value.ceil_div(divisor).ok_or_else(|| {
        TranslationError::UnsupportedField(format!("divisor of {}", sel.resource))
    })?;
    Ok(out.to_string())
}
