//! tokenreviews, subjectaccessreviews and selfsubjectaccessreviews: answered, not stored.
//! There is one identity (the kubeconfig's token, in group `system:masters`) and no RBAC, so
//! every access review is allowed, as it would be for `system:masters`.

use serde_json::{Value, json};

use super::cluster::ADMIN_USER;
use super::errors::{ApiError, ApiResult};
use super::resources::ResourceType;
use super::tokens::{DEFAULT_AUDIENCE, TokenUser, Tokens};

/// Answers a review object of `rt`.
pub fn review(
    rt: &ResourceType,
    tokens: &Tokens,
    caller: Option<&TokenUser>,
    mut obj: Value,
) -> ApiResult<Value> {
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
            let wanted: Vec<String> = obj
                .pointer("/spec/audiences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            obj["status"] = match tokens
                .authenticate(presented)
                .filter(|_| !presented.is_empty())
            {
                Some(user) => {
                    let audiences: Vec<String> = if wanted.is_empty() {
                        if user.audiences.is_empty() {
                            vec![DEFAULT_AUDIENCE.to_string()]
                        } else {
                            user.audiences.clone()
                        }
                    } else {
                        wanted
                            .iter()
                            .filter(|w| user.audiences.is_empty() || user.audiences.contains(w))
                            .cloned()
                            .collect()
                    };
                    if audiences.is_empty() {
                        json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, token audiences is invalid for the target audiences]"})
                    } else {
                        let mut u = json!({"username": user.username, "groups": user.groups});
                        if !user.uid.is_empty() {
                            u["uid"] = json!(user.uid);
                        }
                        json!({"authenticated": true, "user": u, "audiences": audiences})
                    }
                }
                None => {
                    json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, token lookup failed]"})
                }
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
        "SelfSubjectReview" => {
            let mut info = json!({});
            if let Some(u) = caller {
                info["username"] = json!(u.username);
                info["groups"] = json!(u.groups);
                if !u.uid.is_empty() {
                    info["uid"] = json!(u.uid);
                }
            }
            obj["status"] = json!({"userInfo": info});
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
