//! `fieldValidation`: with `Strict` (what kubectl sends by default) unknown fields are
//! rejected with kube-apiserver's `strict decoding error`; with `Warn` or `Ignore` they are
//! dropped silently. Unknown fields are found by decoding into the k8s-openapi type and
//! comparing the re-encoded object with the input.

use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use super::resources::ResourceType;

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> ApiResult<Value> {
    let typed: T = serde_json::from_value(v.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))
}

fn typed_roundtrip(rt: &ResourceType, v: &Value) -> ApiResult<Option<Value>> {
    use k8s_openapi::api;
    let out = match (rt.group, rt.kind) {
        ("", "Pod") => roundtrip::<api::core::v1::Pod>(v)?,
        ("", "Node") => roundtrip::<api::core::v1::Node>(v)?,
        ("", "Namespace") => roundtrip::<api::core::v1::Namespace>(v)?,
        ("", "ConfigMap") => roundtrip::<api::core::v1::ConfigMap>(v)?,
        ("", "Secret") => roundtrip::<api::core::v1::Secret>(v)?,
        ("", "Service") => roundtrip::<api::core::v1::Service>(v)?,
        ("", "ServiceAccount") => roundtrip::<api::core::v1::ServiceAccount>(v)?,
        ("", "Event") => roundtrip::<api::core::v1::Event>(v)?,
        ("events.k8s.io", "Event") => roundtrip::<api::events::v1::Event>(v)?,
        ("apps", "Deployment") => roundtrip::<api::apps::v1::Deployment>(v)?,
        ("apps", "ReplicaSet") => roundtrip::<api::apps::v1::ReplicaSet>(v)?,
        ("apps", "DaemonSet") => roundtrip::<api::apps::v1::DaemonSet>(v)?,
        ("coordination.k8s.io", "Lease") => roundtrip::<api::coordination::v1::Lease>(v)?,
        ("rbac.authorization.k8s.io", "ClusterRole") => roundtrip::<api::rbac::v1::ClusterRole>(v)?,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            roundtrip::<api::rbac::v1::ClusterRoleBinding>(v)?
        }
        ("rbac.authorization.k8s.io", "Role") => roundtrip::<api::rbac::v1::Role>(v)?,
        ("rbac.authorization.k8s.io", "RoleBinding") => roundtrip::<api::rbac::v1::RoleBinding>(v)?,
        ("certificates.k8s.io", _) => {
            roundtrip::<api::certificates::v1::CertificateSigningRequest>(v)?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn unknown_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, iv) in i {
                if iv.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => unknown_fields(iv, kv, &p, out),
                    None => {
                        // Empty objects/lists/strings/false may be omitted on re-encode.
                        let empty = match iv {
                            Value::Object(m) => m.is_empty(),
                            Value::Array(a) => a.is_empty(),
                            Value::String(s) => s.is_empty(),
                            Value::Bool(b) => !b,
                            _ => false,
                        };
                        if !empty {
                            out.push(p);
                        }
                    }
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (idx, (iv, kv)) in i.iter().zip(k.iter()).enumerate() {
                unknown_fields(iv, kv, &format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks a request body for unknown fields per the `fieldValidation` parameter.
pub fn check(rt: &ResourceType, body: &Value, directive: Option<&str>) -> ApiResult<()> {
    if directive != Some("Strict") {
        return Ok(());
    }
    let Some(known) = typed_roundtrip(rt, body)? else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    unknown_fields(body, &known, "", &mut unknown);
    // Strategic-merge/apply directives are not fields.
    unknown.retain(|p| !p.rsplit('.').next().unwrap_or("").starts_with('$'));
    if unknown.is_empty() {
        return Ok(());
    }
    let msg = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::bad_request(format!(
        "strict decoding error: {msg}"
    )))
}

/// [`check`] for a create or update body: kube-apiserver reports its strict decoding
/// errors as `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`.
pub fn check_body(rt: &ResourceType, body: &Value, directive: Option<&str>) -> ApiResult<()> {
    check(rt, body, directive).map_err(|mut e| {
        if e.code == 400 {
            e.message = format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
                e.message,
                kind = rt.kind,
                version = rt.version
            );
        }
        e
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_rejects_unknown_fields() {
        let rt = super::super::resources::find("", "v1", "pods").unwrap();
        let ok = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{}},"spec":{"containers":[{"name":"c","image":"i"}]}});
        assert!(check(rt, &ok, Some("Strict")).is_ok());
        let bad = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","imagee":"x"}]}});
        let e = check(rt, &bad, Some("Strict")).unwrap_err();
        assert_eq!(
            e.message,
            "strict decoding error: unknown field \"spec.containers[0].imagee\""
        );
        assert!(check(rt, &bad, Some("Warn")).is_ok());
    }
}
