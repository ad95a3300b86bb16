//! Bearer tokens: the kubeconfig's admin token and ServiceAccount tokens issued through
//! `serviceaccounts/{name}/token` (TokenRequest), which authenticate API requests and
//! TokenReviews as `system:serviceaccount:<ns>:<name>` until they expire.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::clock;
use super::errors::{ApiError, ApiResult};

/// The default audience of issued tokens.
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUser {
    /// Username.
    pub username: String,
    /// UID ("" for the admin).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Audiences the token is valid for (empty: any).
    pub audiences: Vec<String>,
}

#[derive(Debug)]
struct Issued {
    user: TokenUser,
    expires: i64,
}

/// The token registry.
#[derive(Debug)]
pub struct Tokens {
    admin: String,
    issued: Mutex<HashMap<String, Issued>>,
}

impl Tokens {
    /// A registry whose admin token is `admin`.
    pub fn new(admin: String) -> Self {
        Self {
            admin,
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// Who `token` authenticates as, if anyone.
    pub fn authenticate(&self, token: &str) -> Option<TokenUser> {
        if token == self.admin {
            return Some(TokenUser {
                username: super::cluster::ADMIN_USER.into(),
                uid: String::new(),
                groups: super::cluster::ADMIN_GROUPS
                    .iter()
                    .map(|g| g.to_string())
                    .collect(),
                audiences: Vec::new(),
            });
        }
        let now = jiff::Timestamp::now().as_second();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, i| i.expires > now);
        issued.get(token).map(|i| i.user.clone())
    }

    /// Answers a TokenRequest for the ServiceAccount `sa` (storage form).
    pub fn request(&self, sa: &Value, body: &Value) -> ApiResult<Value> {
        let ns = sa
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = sa
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let uid = sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let secs = body
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        if secs < 600 {
            // The TokenRequest itself has no name (kube-apiserver says `""`).
            return Err(ApiError::invalid(
                "TokenRequest",
                "authentication.k8s.io",
                "",
                "spec.expirationSeconds",
                &format!("Invalid value: {secs}: may not specify a duration less than 10 minutes"),
            ));
        }
        let audiences: Vec<String> = body
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_string()]);
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let expires = jiff::Timestamp::now().as_second() + secs;
        let user = TokenUser {
            username: format!("system:serviceaccount:{ns}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            audiences: audiences.clone(),
        };
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), Issued { user, expires });
        let expiration = jiff::Timestamp::from_second(expires)
            .map(clock::format_time)
            .unwrap_or_default();
        let mut spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["audiences"] = json!(audiences);
        spec["expirationSeconds"] = json!(secs);
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": clock::now()},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": expiration},
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn issued_tokens_authenticate_as_the_service_account() {
        let t = Tokens::new("admin".into());
        assert!(t.authenticate("admin").is_some());
        assert!(t.authenticate("nope").is_none());
        let sa = json!({"metadata": {"name": "sa", "namespace": "ns", "uid": "u"}});
        let r = t.request(&sa, &json!({"spec": {}})).unwrap();
        let tok = r["status"]["token"].as_str().unwrap();
        let user = t.authenticate(tok).unwrap();
        assert_eq!(user.username, "system:serviceaccount:ns:sa");
        assert!(
            t.request(&sa, &json!({"spec": {"expirationSeconds": 10}}))
                .is_err()
        );
    }
}
