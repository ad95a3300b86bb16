//! The `scale` subresource of deployments and replicasets: an `autoscaling/v1` `Scale`
//! view of `spec.replicas`, `status.replicas` and the label selector (what `kubectl scale`
//! reads and writes).

use serde_json::{Value, json};

use super::cluster::{Cluster, meta_str};
use super::errors::{ApiError, ApiResult};
use super::label_selector::selector_string;
use super::patch::{self, PatchType};
use super::resources::ResourceType;

/// The `Scale` of a stored deployment or replicaset.
pub fn to_scale(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let mut meta = json!({
        "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
        "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
    });
    if let Some(o) = meta.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status_replicas = obj
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
        "spec": {"replicas": replicas},
        "status": {"replicas": status_replicas,
            "selector": selector_string(obj.pointer("/spec/selector").unwrap_or(&Value::Null))},
    })
}

/// GET `.../scale`.
pub fn get(cluster: &Cluster, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
    let obj = cluster.get(rt, Some(ns), name)?;
    Ok(to_scale(&obj))
}

/// PUT `.../scale` (`body` is a Scale) or PATCH (`patch` applied to the current Scale).
pub fn write(
    cluster: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    body: ScaleWrite<'_>,
) -> ApiResult<Value> {
    let current = cluster.get(rt, Some(ns), name)?;
    let scale = match body {
        ScaleWrite::Put(s) => {
            let rv = meta_str(s, "resourceVersion");
            if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
                return Err(ApiError::conflict(rt.group, rt.plural, name));
            }
            s.clone()
        }
        ScaleWrite::Patch(pt, p) => {
            if pt == PatchType::Apply {
                return Err(ApiError::unsupported_media_type(
                    "application/apply-patch+yaml",
                ));
            }
            patch::apply_patch(pt, "Scale", &to_scale(&current), p)?
        }
    };
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            "spec.replicas",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut obj = current;
    obj["spec"]["replicas"] = json!(replicas);
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let out = cluster.update(rt, Some(ns), name, obj, None)?;
    Ok(to_scale(&out))
}

/// A write to the scale subresource.
#[derive(Debug)]
pub enum ScaleWrite<'a> {
    /// PUT of a whole Scale.
    Put(&'a Value),
    /// PATCH of the given type.
    Patch(PatchType, &'a Value),
}
