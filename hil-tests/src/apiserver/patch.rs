//! PATCH: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch with
//! the list merge keys of the built-in types, and a merge approximation of server-side apply.

use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult};

/// The patch content types kube-apiserver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From a Content-Type header.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    Replace,
    MergeKey(&'static str),
    MergePrimitive,
}

/// The patch strategy of the list at `path` (field names joined by '.', no indices),
/// following the `patchStrategy`/`patchMergeKey` tags of the Kubernetes API types.
pub(crate) fn list_strategy(kind: &str, path: &str) -> ListStrategy {
    let field = path.rsplit('.').next().unwrap_or(path);
    match (kind, field) {
        (_, "finalizers") if path == "metadata.finalizers" => ListStrategy::MergePrimitive,
        (_, "ownerReferences") => ListStrategy::MergeKey("uid"),
        (_, "containers" | "initContainers" | "ephemeralContainers") => {
            ListStrategy::MergeKey("name")
        }
        ("Service", "ports") if path == "spec.ports" => ListStrategy::MergeKey("port"),
        (_, "ports") => ListStrategy::MergeKey("containerPort"),
        (_, "env") => ListStrategy::MergeKey("name"),
        (_, "volumeMounts") => ListStrategy::MergeKey("mountPath"),
        (_, "volumeDevices") => ListStrategy::MergeKey("devicePath"),
        (_, "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
            ListStrategy::MergeKey("name")
        }
        (_, "hostAliases") => ListStrategy::MergeKey("ip"),
        (_, "podIPs" | "hostIPs") => ListStrategy::MergeKey("ip"),
        (_, "topologySpreadConstraints") => ListStrategy::MergeKey("topologyKey"),
        ("CertificateSigningRequest", "conditions") => ListStrategy::Replace,
        (_, "conditions") => ListStrategy::MergeKey("type"),
        ("Node", "addresses") => ListStrategy::MergeKey("type"),
        ("Node", "podCIDRs") => ListStrategy::MergePrimitive,
        ("ServiceAccount", "secrets") => ListStrategy::MergeKey("name"),
        _ => ListStrategy::Replace,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_map(
    kind: &str,
    path: &str,
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
) -> ApiResult<()> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let Value::Object(m) = strip_directives(&Value::Object(patch.clone())) else {
                return Ok(());
            };
            *orig = m;
            return Ok(());
        }
        Some("delete") => {
            orig.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other} in map"
            )));
        }
    }
    for (key, pv) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (orig.get_mut(field), pv) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if pv.is_null() {
            orig.remove(key);
            continue;
        }
        let child = join(path, key);
        match (orig.get_mut(key), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => merge_map(kind, &child, o, p)?,
            (Some(Value::Array(o)), Value::Array(p)) => merge_list(kind, &child, o, p)?,
            (_, Value::Object(p)) => {
                let mut fresh = Map::new();
                merge_map(kind, &child, &mut fresh, p)?;
                orig.insert(key.clone(), Value::Object(fresh));
            }
            (_, Value::Array(p)) => {
                let mut fresh = Vec::new();
                merge_list(kind, &child, &mut fresh, p)?;
                orig.insert(key.clone(), Value::Array(fresh));
            }
            (_, other) => {
                orig.insert(key.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        orig.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    // $setElementOrder: reorder merged lists to the order given, others after.
    for (key, order) in patch {
        let Some(field) = key.strip_prefix("$setElementOrder/") else {
            continue;
        };
        let (Some(Value::Array(list)), Value::Array(order)) = (orig.get_mut(field), order) else {
            continue;
        };
        let strategy = list_strategy(kind, &join(path, field));
        let pos = |item: &Value| -> usize {
            let probe = match strategy {
                ListStrategy::MergeKey(k) => item.get(k).cloned(),
                _ => Some(item.clone()),
            };
            order
                .iter()
                .position(|o| match strategy {
                    ListStrategy::MergeKey(k) => o.get(k).cloned() == probe,
                    _ => Some(o.clone()) == probe,
                })
                .unwrap_or(usize::MAX)
        };
        list.sort_by_key(|item| pos(item));
    }
    Ok(())
}

fn merge_list(kind: &str, path: &str, orig: &mut Vec<Value>, patch: &[Value]) -> ApiResult<()> {
    match list_strategy(kind, path) {
        ListStrategy::Replace => {
            *orig = patch.iter().map(strip_directives).collect();
        }
        ListStrategy::MergePrimitive => {
            for p in patch {
                if !orig.contains(p) {
                    orig.push(p.clone());
                }
            }
        }
        ListStrategy::MergeKey(mk) => {
            if patch
                .iter()
                .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                *orig = patch
                    .iter()
                    .filter(|p| p.get("$patch").is_none())
                    .map(strip_directives)
                    .collect();
                return Ok(());
            }
            for p in patch {
                let Some(pm) = p.as_object() else {
                    return Err(ApiError::bad_request(format!(
                        "unable to find api field in struct for the list {path}: expected objects with merge key {mk}"
                    )));
                };
                let key = pm.get(mk).cloned().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "map: {p} does not contain declared merge key: {mk}"
                    ))
                })?;
                let idx = orig.iter().position(|o| o.get(mk) == Some(&key));
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = idx {
                        orig.remove(i);
                    }
                    continue;
                }
                match idx {
                    Some(i) => {
                        if let Some(Value::Object(o)) = orig.get_mut(i) {
                            merge_map(kind, path, o, pm)?;
                        }
                    }
                    None => orig.push(strip_directives(p)),
                }
            }
        }
    }
    Ok(())
}

/// Applies a strategic merge patch to `orig` (an object of `kind`).
pub fn strategic_merge(kind: &str, orig: &Value, patch: &Value) -> ApiResult<Value> {
    let (Value::Object(o), Value::Object(p)) = (orig, patch) else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    let mut out = o.clone();
    merge_map(kind, "", &mut out, p)?;
    Ok(Value::Object(out))
}

/// Parses a patch body (JSON; for apply also YAML).
pub fn parse_body(pt: PatchType, body: &[u8]) -> ApiResult<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if pt == PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("apply patch body is not UTF-8"))?;
            yaml_to_json(text).map_err(|ye| {
                ApiError::bad_request(format!("error decoding YAML: {ye} (as JSON: {e})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Converts a YAML document to JSON.
pub fn yaml_to_json(text: &str) -> std::result::Result<Value, String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let doc = docs.into_iter().next().ok_or("empty YAML document")?;
    Ok(yaml_value(&doc))
}

fn yaml_value(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_value).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_value(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

/// Applies a patch of any type to `orig`.
pub fn apply_patch(pt: PatchType, kind: &str, orig: &Value, patch: &Value) -> ApiResult<Value> {
    match pt {
        PatchType::Merge => {
            let mut out = orig.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            let mut out = orig.clone();
            // kube-apiserver does not say which operation failed.
            json_patch::patch(&mut out, &ops).map_err(|e| {
                tracing::debug!(error = %e, "JSON patch failed");
                let mut err = ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                );
                err.details = Some(serde_json::json!({}));
                err
            })?;
            Ok(out)
        }
        PatchType::Strategic | PatchType::Apply => strategic_merge(kind, orig, patch),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_conditions_by_type_and_replaces_taints() {
        let node = json!({"spec":{"taints":[{"key":"a","effect":"NoSchedule"}]},
            "status":{"conditions":[{"type":"Ready","status":"True"},{"type":"MemoryPressure","status":"False"}],
            "addresses":[{"type":"InternalIP","address":"1.2.3.4"}]}});
        let patch = json!({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]},
            "status":{"conditions":[{"type":"Ready","status":"Unknown"}],
            "addresses":[{"type":"Hostname","address":"n1"}]}});
        let out = strategic_merge("Node", &node, &patch).unwrap();
        assert_eq!(out["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(out["status"]["conditions"][1]["type"], "MemoryPressure");
        assert_eq!(out["spec"]["taints"].as_array().unwrap().len(), 1);
        assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_directives() {
        let pod = json!({"metadata":{"finalizers":["a"]},"spec":{"containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}});
        let patch = json!({"metadata":{"finalizers":["b"],"$deleteFromPrimitiveList/finalizers":["a"]},
            "spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],
            "containers":[{"name":"a","$patch":"delete"},{"name":"b","image":"z"}]}});
        let out = strategic_merge("Pod", &pod, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["spec"]["containers"], json!([{"name":"b","image":"z"}]));
    }

    #[test]
    fn yaml_apply_body() {
        let v = parse_body(
            PatchType::Apply,
            b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n",
        )
        .unwrap();
        assert_eq!(v["data"]["a"], "1");
    }
}
