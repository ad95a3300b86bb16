//! Conversion between a resource's served version and its storage form. Events are stored
//! as core/v1 and served also as events.k8s.io/v1 (field renames as kube-apiserver does).

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

/// Served form → storage form.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if rt.group == "events.k8s.io" {
        stamp(rename(&obj, true), "v1", "Event")
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
