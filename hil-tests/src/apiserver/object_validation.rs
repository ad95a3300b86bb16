//! Object validation kube-apiserver does on create and update that clients run into most:
//! label and annotation keys/values, pod containers (present, named as DNS labels, unique,
//! with an image). Failures are `422 Invalid` with kube-apiserver's field paths and wording.

use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use super::resources::ResourceType;

const NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn dns_subdomain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Why a qualified name (label/annotation key) is invalid, if it is.
pub fn qualified_name_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !dns_subdomain_ok(p)
    {
        return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !name_part_ok(name) {
        return Some(NAME_MSG.into());
    }
    None
}

fn dns_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Validates an object (storage form) of `rt`.
pub fn validate(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let invalid =
        |field: &str, msg: String| Err(ApiError::invalid(rt.kind, rt.group, name, field, &msg));
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(why) = qualified_name_error(k) {
                return invalid("metadata.labels", format!("Invalid value: \"{k}\": {why}"));
            }
            let v = v.as_str().unwrap_or("");
            if !v.is_empty() && (v.len() > 63 || !name_part_ok(v)) {
                let why = if v.len() > 63 {
                    "must be no more than 63 characters"
                } else {
                    VALUE_MSG
                };
                return invalid("metadata.labels", format!("Invalid value: \"{v}\": {why}"));
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0usize;
        for (k, v) in annotations {
            if let Some(why) = qualified_name_error(&k.to_lowercase()) {
                return invalid(
                    "metadata.annotations",
                    format!("Invalid value: \"{k}\": {why}"),
                );
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            return invalid(
                "metadata.annotations",
                format!("Too long: may not be more than 262144 bytes (got {total})"),
            );
        }
    }
    if matches!(rt.storage, "deployments" | "replicasets" | "daemonsets") {
        validate_workload(rt, obj, name)?;
    }
    // certificates validation: shorter than twice the signer's 5-minute backdating, a
    // certificate could be born expired.
    if rt.storage == "certificatesigningrequests"
        && let Some(secs) = obj
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .filter(|s| *s < 600)
    {
        return invalid(
            "spec.expirationSeconds",
            format!(
                "Invalid value: {secs}: may not specify a duration less than 600 seconds (10 minutes)"
            ),
        );
    }
    if rt.storage == "pods" {
        let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
        if containers.is_none_or(Vec::is_empty) {
            return invalid("spec.containers", "Required value".into());
        }
        let mut seen: Vec<&str> = Vec::new();
        for list in ["initContainers", "containers"] {
            for (i, c) in obj
                .pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
                if cname.is_empty() {
                    return invalid(&format!("spec.{list}[{i}].name"), "Required value".into());
                }
                if !dns_label_ok(cname) {
                    return invalid(
                        &format!("spec.{list}[{i}].name"),
                        format!(
                            "Invalid value: \"{cname}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                        ),
                    );
                }
                if seen.contains(&cname) {
                    return invalid(
                        &format!("spec.{list}[{i}].name"),
                        format!("Duplicate value: \"{cname}\""),
                    );
                }
                seen.push(cname);
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s.trim().is_empty())
                {
                    return invalid(&format!("spec.{list}[{i}].image"), "Required value".into());
                }
            }
        }
    }
    Ok(())
}

/// Go's `%#v` of a `map[string]string`, as kube's validation messages print label maps.
fn go_map(m: &Value) -> String {
    let items: Vec<String> = m
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("map[string]string{{{}}}", items.join(", "))
}

/// apps/v1 validation (ValidateDeploymentSpec, ValidateReplicaSetSpec,
/// ValidateDaemonSetSpec): selector required and non-empty, matching the template's labels,
/// template containers required, non-negative replicas, DaemonSet restartPolicy Always.
fn validate_workload(rt: &ResourceType, obj: &Value, name: &str) -> ApiResult<()> {
    let invalid =
        |field: &str, msg: String| Err(ApiError::invalid(rt.kind, rt.group, name, field, &msg));
    let Some(selector) = obj.pointer("/spec/selector").filter(|v| !v.is_null()) else {
        return invalid("spec.selector", "Required value".into());
    };
    let empty = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
        && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if empty {
        return invalid(
            "spec.selector",
            format!(
                "Invalid value: {}: empty selector is invalid for {}",
                selector, rt.singular
            ),
        );
    }
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if !super::label_selector::matches(selector, &labels) {
        return invalid(
            "spec.template.metadata.labels",
            format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                go_map(&labels)
            ),
        );
    }
    if obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return invalid("spec.template.spec.containers", "Required value".into());
    }
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
        && r < 0
    {
        return invalid(
            "spec.replicas",
            format!("Invalid value: {r}: must be greater than or equal to 0"),
        );
    }
    if rt.storage == "daemonsets" {
        let policy = obj
            .pointer("/spec/template/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always");
        if policy != "Always" {
            return invalid(
                "spec.template.spec.restartPolicy",
                format!("Unsupported value: \"{policy}\": supported values: \"Always\""),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_containers() {
        let rt = super::super::resources::find("", "v1", "pods").unwrap();
        let ok = json!({"metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "x", "e": ""}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert!(validate(rt, &ok).is_ok());
        let bad_label = json!({"metadata": {"name": "p", "labels": {"bad key": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(validate(rt, &bad_label).unwrap_err().code, 422);
        let no_image = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            validate(rt, &no_image).unwrap_err().message,
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
        let dup = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "c", "image": "i"}]}});
        assert!(
            validate(rt, &dup)
                .unwrap_err()
                .message
                .contains("Duplicate value")
        );
    }
}
