//! Errors as kube-apiserver returns them: `Status` objects with its reasons and codes.

use serde_json::{Value, json};

/// An API error, rendered to the client as a `meta.k8s.io/v1` `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message, worded like kube-apiserver's.
    pub message: String,
    /// `Status.details`, when kube-apiserver fills it.
    pub details: Option<Value>,
}

/// Result alias for API handlers.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// Qualified resource for messages: `pods` or `leases.coordination.k8s.io`.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(group: &str, plural: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": plural });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

impl ApiError {
    /// Builds an error with no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `NotFound` for a named object.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", qualified(group, plural)),
            details: Some(details(group, plural, name)),
        }
    }

    /// 409 `AlreadyExists` on create of an existing name.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", qualified(group, plural)),
            details: Some(details(group, plural, name)),
        }
    }

    /// 409 `Conflict` on a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
            details: Some(details(group, plural, name)),
        }
    }

    /// 409 `Conflict` with a custom message (failed preconditions).
    pub fn conflict_msg(group: &str, plural: &str, name: &str, msg: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {msg}",
                qualified(group, plural)
            ),
            details: Some(details(group, plural, name)),
        }
    }

    /// 422 `Invalid` with one cause.
    pub fn invalid(kind: &str, group: &str, name: &str, field: &str, msg: &str) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut d = json!({ "name": name, "kind": kind,
            "causes": [{ "reason": "FieldValueInvalid", "message": msg, "field": field }] });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{gk} \"{name}\" is invalid: {field}: {msg}"),
            details: Some(d),
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 410 `Expired` (too old resource version / continue token).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 403 `Forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"
            ),
        )
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object kube-apiserver sends for this error.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_kube_apiserver() {
        let s = ApiError::not_found("coordination.k8s.io", "leases", "n1").to_status();
        assert_eq!(s["message"], "leases.coordination.k8s.io \"n1\" not found");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "coordination.k8s.io");
    }
}
