//! tokenreviews, subjectaccessreviews and selfsubjectaccessreviews: answered, not stored.
//! There is one identity (the kubeconfig's token, in group `system:masters`) and no RBAC, so
//! every access review is allowed, as it would be for `system:masters`.

use serde_json::{Value, json};

use super::cluster::{ADMIN_GROUPS, ADMIN_USER};
use super::errors::{ApiError, ApiResult};
use super::resources::ResourceType;

/// Answers a review object of `rt`.
pub fn review(rt: &ResourceType, token: &str, mut obj: Value) -> ApiResult<Value> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    match rt.kind {
        "TokenReview" => {
            let presented = obj
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("");
            let audiences = obj
                .pointer("/spec/audiences")
                .cloned()
                .unwrap_or_else(|| json!(["https://kubernetes.default.svc.cluster.local"]));
            obj["status"] = if !presented.is_empty() && presented == token {
                json!({"authenticated": true, "user": {"username": ADMIN_USER, "groups": ADMIN_GROUPS}, "audiences": audiences})
            } else {
                json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, token lookup failed]"})
            };
        }
        "SubjectAccessReview" => {
            let user = obj
                .pointer("/spec/user")
                .and_then(Value::as_str)
                .unwrap_or("");
            let groups: Vec<&str> = obj
                .pointer("/spec/groups")
                .and_then(Value::as_array)
                .map(|g| g.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if user.is_empty() && groups.is_empty() {
                return Err(ApiError::invalid(
                    "SubjectAccessReview",
                    "authorization.k8s.io",
                    "",
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            let allowed = user == ADMIN_USER || groups.contains(&"system:masters");
            obj["status"] = if allowed {
                json!({"allowed": true, "reason": "system:masters group is allowed everything (emulator)"})
            } else {
                json!({"allowed": true, "reason": "emulator has no RBAC: every subject is allowed"})
            };
        }
        "SelfSubjectAccessReview" => {
            obj["status"] = json!({"allowed": true, "reason": "system:masters group is allowed everything (emulator)"});
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "create is not supported on this resource",
            ));
        }
    }
    Ok(obj)
}
