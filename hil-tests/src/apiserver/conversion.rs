//! Conversion between a resource's served version and its storage form. Events are stored
//! as core/v1 and served also as events.k8s.io/v1 (field renames as kube-apiserver does);
//! a Secret's `stringData` goes into `data`.

use serde_json::{Map, Value};

use super::resources::ResourceType;

const RENAMES: &[(&str, &str)] = &[
    // (events.k8s.io/v1, core/v1)
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, forward: bool) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let nk = RENAMES
            .iter()
            .find(|(a, b)| if forward { a == k } else { b == k })
            .map(|(a, b)| if forward { *b } else { *a })
            .unwrap_or(k.as_str());
        out.insert(nk.to_string(), v.clone());
    }
    Value::Object(out)
}

fn stamp(mut obj: Value, api_version: &str, kind: &str) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
        m.insert("kind".into(), Value::String(kind.into()));
    }
    obj
}

/// A Secret's write-only `stringData` merged into `data` (base64), as the v1 → internal
/// conversion does; `stringData` wins over `data` for the same key.
fn merge_string_data(mut obj: Value) -> Value {
    use base64::Engine;
    let Some(m) = obj.as_object_mut() else {
        return obj;
    };
    let Some(Value::Object(string_data)) = m.remove("stringData") else {
        return obj;
    };
    if !m.get("data").is_some_and(Value::is_object) {
        m.insert("data".into(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(data)) = m.get_mut("data") {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            data.insert(k, Value::String(encoded));
        }
    }
    obj
}

/// Served form → storage form.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if rt.group == "events.k8s.io" {
        stamp(rename(&obj, true), "v1", "Event")
    } else if rt.storage == "secrets" {
        stamp(merge_string_data(obj), &rt.api_version(), rt.kind)
    } else {
        stamp(obj, &rt.api_version(), rt.kind)
    }
}

/// Storage form → served form.
pub fn from_storage(rt: &ResourceType, obj: &Value) -> Value {
    if rt.group == "events.k8s.io" {
        stamp(rename(obj, false), &rt.api_version(), rt.kind)
    } else {
        obj.clone()
    }
}
