//! Server-side apply with field ownership: each applier's fields are recorded in
//! `metadata.managedFields` (`operation: Apply`, `fieldsType: FieldsV1`); fields an applier
//! owned and no longer applies are removed; a field another manager owns with a different
//! value is a `409 Conflict` unless `force=true`, which takes the field over. Lists follow
//! the strategic-merge list keys (`k:{"name":"c"}`), primitive sets (`v:"x"`) or are atomic.
//! Other writes record `operation: Update` entries for the fields they change (manager from
//! `fieldManager` or the User-Agent), taking those fields over from other managers.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::clock;
use super::errors::{ApiError, ApiResult};
use super::patch::{self, ListStrategy, list_strategy};

/// A field path: `f:spec`, `k:{"name":"c"}`, `v:"x"`, `.` segments.
pub type FieldPath = Vec<String>;

fn dotted(path: &[String]) -> String {
    path.iter()
        .filter_map(|s| s.strip_prefix("f:"))
        .collect::<Vec<_>>()
        .join(".")
}

fn walk(kind: &str, v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if k.starts_with('$') {
                    continue;
                }
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if path.len() == 1
                    && path[0] == "f:metadata"
                    && matches!(
                        k.as_str(),
                        "name"
                            | "namespace"
                            | "managedFields"
                            | "resourceVersion"
                            | "uid"
                            | "creationTimestamp"
                            | "generation"
                    )
                {
                    continue;
                }
                path.push(format!("f:{k}"));
                walk(kind, child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => match list_strategy(kind, &dotted(path)) {
            ListStrategy::MergeKey(mk) => {
                for item in items {
                    let Some(key) = item.get(mk) else { continue };
                    path.push(format!("k:{}", json!({ mk: key })));
                    path.push(".".into());
                    out.insert(path.clone());
                    path.pop();
                    walk(kind, item, path, out);
                    path.pop();
                }
            }
            ListStrategy::MergePrimitive => {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListStrategy::Replace => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The field paths an applied configuration sets.
pub fn field_paths(kind: &str, applied: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    walk(kind, applied, &mut Vec::new(), &mut out);
    out
}

/// Field paths as a FieldsV1 tree.
pub fn to_fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut node = &mut root;
        for seg in p {
            let next = node.entry(seg.clone()).or_insert_with(|| json!({}));
            let Some(m) = next.as_object_mut() else { break };
            node = m;
        }
    }
    Value::Object(root)
}

/// A FieldsV1 tree as field paths (leaves are empty objects).
pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn rec(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    rec(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    rec(v, &mut Vec::new(), &mut out);
    out
}

fn key_matches(item: &Value, seg: &str) -> bool {
    let Some(spec) = seg.strip_prefix("k:") else {
        return false;
    };
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(spec) else {
        return false;
    };
    want.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// The value at a field path, if present.
pub fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        if seg == "." {
            continue;
        }
        cur = if let Some(f) = seg.strip_prefix("f:") {
            cur.get(f)?
        } else if seg.starts_with("k:") {
            cur.as_array()?.iter().find(|i| key_matches(i, seg))?
        } else if let Some(v) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|i| **i == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the field (or list item) at a path; missing paths are ignored.
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let (target, parent_path) = match path.last().map(String::as_str) {
        Some(".") => (
            path.get(path.len().saturating_sub(2)),
            &path[..path.len().saturating_sub(2)],
        ),
        Some(_) => (path.last(), &path[..path.len() - 1]),
        None => return,
    };
    let Some(target) = target else { return };
    let mut cur = obj;
    for seg in parent_path {
        if seg == "." {
            continue;
        }
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if seg.starts_with("k:") {
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| key_matches(i, seg)))
        } else {
            None
        };
        let Some(n) = next else { return };
        cur = n;
    }
    if let Some(f) = target.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if target.starts_with("k:") {
        if let Some(a) = cur.as_array_mut() {
            a.retain(|i| !key_matches(i, target));
        }
    } else if let Some(v) = target.strip_prefix("v:")
        && let Ok(want) = serde_json::from_str::<Value>(v)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|i| *i != want);
    }
}

fn entries(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn is_apply_entry(e: &Value, manager: &str, sub: Option<&str>) -> bool {
    e.get("manager").and_then(Value::as_str) == Some(manager)
        && e.get("operation").and_then(Value::as_str) == Some("Apply")
        && e.get("subresource").and_then(Value::as_str) == sub
}

/// Applies `applied` (from `manager`) to the `live` object (served form).
pub fn apply(
    kind: &str,
    api_version: &str,
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    sub: Option<&str>,
) -> ApiResult<Value> {
    let new_paths = field_paths(kind, applied);
    let mut managed = entries(live);
    // Conflicts with other appliers on fields whose values would change.
    let mut conflicts = Vec::new();
    for e in managed
        .iter_mut()
        .filter(|e| !is_apply_entry(e, manager, sub))
    {
        let other = e
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut theirs = from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null));
        let clash: Vec<FieldPath> = theirs
            .iter()
            .filter(|p| new_paths.contains(*p) && p.last().map(String::as_str) != Some("."))
            .filter(|p| get_path(live, p) != get_path(applied, p))
            .cloned()
            .collect();
        if clash.is_empty() {
            continue;
        }
        if force {
            for p in &clash {
                theirs.remove(p);
            }
            e["fieldsV1"] = to_fields_v1(&theirs);
        } else {
            for p in clash {
                let using = e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .map(|v| format!(" using {v}"))
                    .unwrap_or_default();
                conflicts.push(format!("conflict with \"{other}\"{using}: .{}", dotted(&p)));
            }
        }
    }
    managed.retain(|e| {
        e.get("fieldsV1")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    });
    if !conflicts.is_empty() {
        let n = conflicts.len();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {n} conflict{}: {}",
                if n == 1 { "" } else { "s" },
                conflicts.join("\n")
            ),
        );
        err.details = Some(
            json!({"causes": conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": c})).collect::<Vec<_>>()}),
        );
        return Err(err);
    }
    // Fields this applier set before and no longer sets are removed.
    let prev = managed
        .iter()
        .find(|e| is_apply_entry(e, manager, sub))
        .map(|e| from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let owned_by_others: BTreeSet<FieldPath> = managed
        .iter()
        .filter(|e| !is_apply_entry(e, manager, sub))
        .flat_map(|e| from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)))
        .collect();
    let mut out = live.clone();
    for p in prev.difference(&new_paths) {
        if !owned_by_others.contains(p) {
            remove_path(&mut out, p);
        }
    }
    let mut body = applied.clone();
    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let mut out = patch::strategic_merge(kind, &out, &body)?;
    // Record this applier's fields (keeping the old time if nothing changed).
    let old_entry = managed
        .iter()
        .find(|e| is_apply_entry(e, manager, sub))
        .cloned();
    managed.retain(|e| !is_apply_entry(e, manager, sub));
    let fields = to_fields_v1(&new_paths);
    let time = match &old_entry {
        Some(e) if e.get("fieldsV1") == Some(&fields) => {
            e.get("time").cloned().unwrap_or(json!(clock::now()))
        }
        _ => json!(clock::now()),
    };
    let mut entry = json!({"manager": manager, "operation": "Apply", "apiVersion": api_version,
        "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields});
    if let Some(s) = sub {
        entry["subresource"] = json!(s);
    }
    managed.push(entry);
    if out.get("metadata").is_none_or(|m| !m.is_object()) {
        out["metadata"] = json!({});
    }
    out["metadata"]["managedFields"] = Value::Array(managed);
    Ok(out)
}

/// Records an `Update` by `manager`: the fields it changed (all, on create) become its own
/// and leave other managers' sets; removed fields leave every set.
pub fn record_update(
    kind: &str,
    api_version: &str,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    sub: Option<&str>,
) {
    let new_paths = field_paths(kind, new);
    let old_paths = old.map(|o| field_paths(kind, o)).unwrap_or_default();
    let changed: BTreeSet<FieldPath> = new_paths
        .iter()
        .filter(|p| old.is_none_or(|o| get_path(o, p) != get_path(new, p)))
        .cloned()
        .collect();
    let removed: BTreeSet<FieldPath> = old_paths.difference(&new_paths).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    let is_mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").and_then(Value::as_str) == sub
    };
    let mut managed = entries(new);
    let mut mine: BTreeSet<FieldPath> = managed
        .iter()
        .find(|e| is_mine(e))
        .map(|e| from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    managed.retain(|e| !is_mine(e));
    for e in managed.iter_mut() {
        let mut f = from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null));
        let before = f.len();
        f.retain(|p| !changed.contains(p) && !removed.contains(p));
        if f.len() != before {
            e["fieldsV1"] = to_fields_v1(&f);
        }
    }
    managed.retain(|e| {
        e.get("fieldsV1")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    });
    mine.extend(changed);
    mine.retain(|p| !removed.contains(p));
    if !mine.is_empty() {
        let mut entry = json!({"manager": manager, "operation": "Update", "apiVersion": api_version,
            "time": clock::now(), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&mine)});
        if let Some(s) = sub {
            entry["subresource"] = json!(s);
        }
        managed.push(entry);
    }
    if new.get("metadata").is_none_or(|m| !m.is_object()) {
        new["metadata"] = json!({});
    }
    new["metadata"]["managedFields"] = Value::Array(managed);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_round_trip_through_fields_v1() {
        let applied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [{"key": "k"}]}});
        let paths = field_paths("Pod", &applied);
        let v1 = to_fields_v1(&paths);
        assert!(v1["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."].is_object());
        assert!(v1["f:metadata"]["f:finalizers"]["v:\"x\""].is_object());
        assert_eq!(from_fields_v1(&v1), paths);
    }

    #[test]
    fn removes_fields_no_longer_applied_and_detects_conflicts() {
        let live = json!({"metadata": {"name": "n"}});
        let a1 = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let s1 = apply("ConfigMap", "v1", &live, &a1, "m1", false, None).unwrap();
        let a2 = json!({"metadata": {"labels": {"a": "1"}}});
        let s2 = apply("ConfigMap", "v1", &s1, &a2, "m1", false, None).unwrap();
        assert_eq!(s2["metadata"]["labels"], json!({"a": "1"}));
        let other = json!({"metadata": {"labels": {"a": "9"}}});
        let err = apply("ConfigMap", "v1", &s2, &other, "m2", false, None).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("conflict with \"m1\" using v1: .metadata.labels.a"),
            "{}",
            err.message
        );
        let forced = apply("ConfigMap", "v1", &s2, &other, "m2", true, None).unwrap();
        assert_eq!(forced["metadata"]["labels"]["a"], "9");
    }
}
