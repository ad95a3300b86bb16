//! What a kubelet API request asks for, and whether the caller may: the kubelet's
//! `--authorization-mode=Webhook`. Every request becomes one or more SubjectAccessReviews
//! (`authorization.k8s.io/v1`) on resource `nodes`, named after the node the request is
//! for, with the verb of the HTTP method and the subresource of the path, mapped as
//! `pkg/kubelet/server/auth.go` maps them (fine-grained kubelet authorization included):
//!
//! | path | subresources tried (first allowed wins) |
//! |---|---|
//! | `/stats/*` | `stats` |
//! | `/metrics/*` | `metrics` |
//! | `/logs/*` | `log` |
//! | `/checkpoint/*` | `checkpoint` |
//! | `/pods`, `/runningpods/` | `pods`, then `proxy` |
//! | `/healthz/*` | `healthz`, then `proxy` |
//! | `/configz`, `/statusz` | `configz` / `statusz`, then `proxy` |
//! | anything else (`/containerLogs`, `/exec`, `/attach`, `/portForward`, `/run`) | `proxy` |
//!
//! Decisions are cached (allowed 5 min, denied 30 s by default, as the kubelet does) in a
//! bounded cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::authn::UserInfo;
use super::review_cache::ReviewCache;

/// Decisions kept at most (the oldest go first).
const DECISION_CACHE_ENTRIES: usize = 8192;

/// The authorization attributes of one request: `verb` on `nodes/<subresource>` of `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAttributes {
    /// `get`, `create`, `update`, `patch`, `delete`, or "" for other methods.
    pub verb: &'static str,
    /// Subresources to try in order; the request is allowed if any one is.
    pub subresources: Vec<&'static str>,
    /// The Node the request is for; None for requests about every node of the gateway
    /// (then only a permission on all nodes allows it).
    pub node: Option<String>,
}

/// The verb the kubelet authorizes for an HTTP method.
pub fn verb_of(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::POST => "create",
        axum::http::Method::GET => "get",
        axum::http::Method::PUT => "update",
        axum::http::Method::PATCH => "patch",
        axum::http::Method::DELETE => "delete",
        _ => "",
    }
}

fn is_subpath(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The subresources the kubelet authorizes for a request path, in the order tried.
pub fn subresources_of(path: &str) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(2);
    if is_subpath(path, "/pods") || is_subpath(path, "/runningpods/") {
        out.push("pods");
    } else if is_subpath(path, "/healthz") {
        out.push("healthz");
    } else if is_subpath(path, "/configz") {
        out.push("configz");
    } else if is_subpath(path, "/statusz") {
        out.push("statusz");
    }
    out.push(if is_subpath(path, "/stats/") {
        "stats"
    } else if is_subpath(path, "/metrics") {
        "metrics"
    } else if is_subpath(path, "/logs/") {
        "log"
    } else if is_subpath(path, "/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    });
    out
}

/// `(namespace, pod)` of paths that address one pod: `/containerLogs/{ns}/{pod}/...`,
/// `/exec/...`, `/attach/...`, `/portForward/...`, `/run/...`, `/checkpoint/...`.
pub fn pod_of_path(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.trim_start_matches('/').split('/');
    let root = parts.next()?;
    if !matches!(
        root,
        "containerLogs" | "exec" | "attach" | "portForward" | "run" | "checkpoint"
    ) {
        return None;
    }
    let namespace = parts.next().filter(|s| !s.is_empty())?;
    let pod = parts.next().filter(|s| !s.is_empty())?;
    Some((namespace, pod))
}

/// The attributes of a request for `path` with `method` on `node`.
pub fn request_attributes(
    method: &axum::http::Method,
    path: &str,
    node: Option<String>,
) -> RequestAttributes {
    RequestAttributes {
        verb: verb_of(method),
        subresources: subresources_of(path),
        node,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// The kubelet's 403 text.
    #[error("Forbidden (user={user}, verb={verb}, resource=nodes, subresource(s)=[{}])", subresources.join(" "))]
    Forbidden {
        user: String,
        verb: String,
        subresources: Vec<String>,
    },
    /// The kubelet's 500 text (the cause is logged).
    #[error(
        "Authorization error (user={user}, verb={verb}, resource=nodes, subresource={subresource})"
    )]
    Review {
        user: String,
        verb: String,
        subresource: String,
        cause: String,
    },
}

/// Why a SubjectAccessReview gave no decision.
#[derive(Debug, thiserror::Error)]
enum ReviewFailure {
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// How long decisions are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthzSettings {
    /// `--kubelet-authz-cache-allowed-ttl` (the kubelet's cacheAuthorizedTTL).
    pub allowed_ttl: Duration,
    /// `--kubelet-authz-cache-denied-ttl` (the kubelet's cacheUnauthorizedTTL).
    pub denied_ttl: Duration,
}

impl Default for AuthzSettings {
    fn default() -> Self {
        Self {
            allowed_ttl: Duration::from_secs(300),
            denied_ttl: Duration::from_secs(30),
        }
    }
}

/// Asks the API server whether a user may do what a request asks.
#[derive(Clone)]
pub struct Authorizer {
    client: kube::Client,
    settings: AuthzSettings,
    decisions: Arc<ReviewCache<bool>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("settings", &self.settings)
            .field("cached_decisions", &self.decisions.len())
            .finish()
    }
}

/// The SubjectAccessReview spec for `user` doing `verb` on `nodes/<subresource>` of `node`.
pub fn review_spec(
    user: &UserInfo,
    verb: &str,
    subresource: &str,
    node: Option<&str>,
) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(user.username.clone()),
        uid: user.uid.clone(),
        groups: Some(user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        resource_attributes: Some(ResourceAttributes {
            verb: Some(verb.to_owned()),
            group: Some(String::new()),
            version: Some("v1".to_owned()),
            resource: Some("nodes".to_owned()),
            subresource: Some(subresource.to_owned()),
            name: node.map(str::to_owned),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Authorizer {
    pub fn new(client: kube::Client, settings: AuthzSettings) -> Self {
        Self {
            client,
            settings,
            decisions: Arc::new(ReviewCache::new(DECISION_CACHE_ENTRIES)),
        }
    }

    /// Allowed if any of the request's subresources is allowed for `user`.
    pub async fn authorize(
        &self,
        user: &UserInfo,
        attrs: &RequestAttributes,
    ) -> Result<(), AuthzError> {
        for subresource in &attrs.subresources {
            let spec = review_spec(user, attrs.verb, subresource, attrs.node.as_deref());
            if self
                .allowed(spec)
                .await
                .map_err(|cause| AuthzError::Review {
                    user: user.username.clone(),
                    verb: attrs.verb.to_owned(),
                    subresource: (*subresource).to_owned(),
                    cause: cause.to_string(),
                })?
            {
                return Ok(());
            }
        }
        Err(AuthzError::Forbidden {
            user: user.username.clone(),
            verb: attrs.verb.to_owned(),
            subresources: attrs.subresources.iter().map(|s| s.to_string()).collect(),
        })
    }

    async fn allowed(&self, spec: SubjectAccessReviewSpec) -> Result<bool, ReviewFailure> {
        let key = serde_json::to_string(&spec)?;
        if let Some(decision) = self.decisions.get(&key, Instant::now()) {
            return Ok(decision);
        }
        let reviews: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let answer = reviews.create(&PostParams::default(), &review).await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed {
            self.settings.allowed_ttl
        } else {
            self.settings.denied_ttl
        };
        self.decisions.insert(key, allowed, ttl, Instant::now());
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests;
