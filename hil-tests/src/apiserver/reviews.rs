//! tokenreviews, subjectaccessreviews and selfsubjectaccessreviews: answered, not stored.
//! TokenReviews authenticate the kubeconfig's admin token and issued ServiceAccount tokens
//! against the requested audiences (none: the API server's own); SubjectAccessReviews are
//! answered by the emulator's RBAC ([`rbac`](super::rbac)). SelfSubjectAccessReviews
//! come from the admin (`system:masters`) and are allowed.

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::errors::{ApiError, ApiResult};
use super::rbac::{self, ResourceRequest, Subject};
use super::resources::ResourceType;
use super::tokens::{DEFAULT_AUDIENCE, TokenUser, Tokens};

/// Answers a review object of `rt`.
pub fn review(
    rt: &ResourceType,
    tokens: &Tokens,
    cluster: &Cluster,
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
                    // No audiences asked: the API server's own (its --api-audiences).
                    let wanted = if wanted.is_empty() {
                        vec![DEFAULT_AUDIENCE.to_string()]
                    } else {
                        wanted
                    };
                    let audiences: Vec<String> = wanted
                        .iter()
                        .filter(|w| user.audiences.is_empty() || user.audiences.contains(w))
                        .cloned()
                        .collect();
                    if audiences.is_empty() {
                        let list = |a: &[String]| serde_json::to_string(a).unwrap_or_default();
                        json!({"user": {}, "error": format!(
                            "[invalid bearer token, token audiences {} is invalid for the target audiences {}]",
                            list(&user.audiences),
                            list(&wanted)
                        )})
                    } else {
                        let mut u = json!({"username": user.username, "groups": user.groups});
                        if !user.uid.is_empty() {
                            u["uid"] = json!(user.uid);
                        }
                        json!({"authenticated": true, "user": u, "audiences": audiences})
                    }
                }
                None => {
                    // kube-apiserver omits `authenticated` when false
                    json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"})
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
            let who = Subject {
                user: user.to_owned(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            };
            let attr = |k: &str| {
                obj.pointer(&format!("/spec/resourceAttributes/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let decision = if obj.pointer("/spec/resourceAttributes").is_some() {
                let req = ResourceRequest {
                    verb: attr("verb"),
                    group: attr("group"),
                    resource: attr("resource"),
                    subresource: attr("subresource"),
                    namespace: attr("namespace"),
                    name: attr("name"),
                };
                rbac::authorize(cluster, &who, &req)
            } else {
                // non-resource URLs: only the privileged group (not evaluated further)
                who.groups
                    .iter()
                    .any(|g| g == rbac::MASTERS_GROUP)
                    .then(String::new)
            };
            obj["status"] = match decision {
                Some(reason) if reason.is_empty() => json!({"allowed": true}),
                Some(reason) => json!({"allowed": true, "reason": reason}),
                None => json!({"allowed": false}),
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
