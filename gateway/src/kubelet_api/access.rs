//! The filter in front of every kubelet API route (unknown paths included), as the
//! kubelet's `InstallAuthFilter`: authenticate ([`authn`](super::authn)), work out the
//! request's attributes ([`authz`](super::authz)), authorize, then serve.
//!
//! Which node a request is for: the gateway is the kubelet of many nodes, so the name
//! in the SubjectAccessReview is the node that runs the pod in the path
//! (`/containerLogs/{ns}/{pod}/...`, `/exec/...`, `/portForward/...`), or the node named
//! in the path (`/stats/summary/{node}`, `/metrics/resource/{node}`). Requests about the
//! gateway as a whole (`/pods` lists the pods of all its nodes, `/healthz` its health)
//! and pods it does not know are authorized without a name, which RBAC allows only to
//! users permitted on every node: a user limited to some nodes (`resourceNames`) cannot
//! read other nodes' pods through `/pods`, nor probe which pods exist elsewhere.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{debug, warn};

use super::authn::{Authenticator, AuthnError, ConnectionIdentity};
use super::authz::{Authorizer, AuthzError, pod_of_path, request_attributes};
use super::plain;
use crate::fleet::Fleet;

/// What the filter needs.
#[derive(Clone, Debug)]
pub struct AccessControl {
    pub fleet: Arc<Fleet>,
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
}

/// The node running pod `namespace/name`, if the gateway knows the pod.
async fn node_of_pod(fleet: &Fleet, namespace: &str, name: &str) -> Option<String> {
    fleet
        .pods()
        .await
        .iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(name)
        })
        .and_then(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
}

/// Authenticates and authorizes `request`, then runs the route.
pub async fn filter(State(access): State<AccessControl>, request: Request, next: Next) -> Response {
    let identity = request
        .extensions()
        .get::<ConnectionIdentity>()
        .cloned()
        .unwrap_or_default();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match access
        .authenticator
        .authenticate(&identity, authorization)
        .await
    {
        Ok(u) => u,
        Err(e) => {
            if let AuthnError::Review(cause) = &e {
                warn!(error = %cause, "kubelet API: TokenReview failed");
            }
            return plain(StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    let path = request.uri().path();
    let node = match pod_of_path(path) {
        Some((ns, pod)) => node_of_pod(&access.fleet, ns, pod).await,
        None => super::usage::node_of_path(path).map(str::to_owned),
    };
    let attrs = request_attributes(request.method(), path, node);
    match access.authorizer.authorize(&user, &attrs).await {
        Ok(()) => next.run(request).await,
        Err(e @ AuthzError::Forbidden { .. }) => {
            debug!(user = %user.username, path, node = ?attrs.node, "kubelet API: forbidden");
            plain(StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e @ AuthzError::Review { .. }) => {
            if let AuthzError::Review { cause, .. } = &e {
                warn!(user = %user.username, error = %cause, "kubelet API: SubjectAccessReview failed");
            }
            plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}
