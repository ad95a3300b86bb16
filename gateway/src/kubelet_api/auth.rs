//! Who may call the kubelet API, as the kubelet decides it: a client certificate signed
//! by --kubelet-client-ca (what kube-apiserver presents), or, when enabled, a bearer
//! token checked with a TokenReview and authorized with a SubjectAccessReview on
//! `nodes/proxy`.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

/// The TLS-level identity of a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionIdentity {
    /// CN of a client certificate verified against --kubelet-client-ca.
    pub certificate_cn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "Unauthorized: present a client certificate signed by the configured --kubelet-client-ca{0}"
    )]
    Unauthenticated(&'static str),
    #[error("Forbidden (user={user}, verb={verb}, resource=nodes, subresource={subresource})")]
    Forbidden {
        user: String,
        verb: String,
        subresource: String,
    },
    #[error("authentication check failed: {0}")]
    Review(String),
}

/// Checks callers.
#[derive(Clone)]
pub struct Authenticator {
    client: kube::Client,
    token_auth: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("token_auth", &self.token_auth)
            .finish()
    }
}

impl Authenticator {
    pub fn new(client: kube::Client, token_auth: bool) -> Self {
        Self { client, token_auth }
    }

    /// Returns the caller's user name if allowed to `verb` on `nodes/<subresource>` of `node`.
    pub async fn check(
        &self,
        identity: &ConnectionIdentity,
        authorization: Option<&str>,
        verb: &str,
        subresource: &str,
        node: Option<&str>,
    ) -> Result<String, AuthError> {
        if let Some(cn) = &identity.certificate_cn {
            return Ok(cn.clone());
        }
        let hint = if self.token_auth {
            " or a valid bearer token"
        } else {
            ""
        };
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let (true, Some(token)) = (self.token_auth, token) else {
            return Err(AuthError::Unauthenticated(hint));
        };
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..Default::default()
        };
        let result = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Review(e.to_string()))?;
        let status = result.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(AuthError::Unauthenticated(hint));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.clone().unwrap_or_default();
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_owned()),
                    resource: Some("nodes".to_owned()),
                    subresource: Some(subresource.to_owned()),
                    name: node.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let sars: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let decision = sars
            .create(&PostParams::default(), &sar)
            .await
            .map_err(|e| AuthError::Review(e.to_string()))?;
        if decision.status.is_some_and(|s| s.allowed) {
            Ok(username)
        } else {
            Err(AuthError::Forbidden {
                user: username,
                verb: verb.to_owned(),
                subresource: subresource.to_owned(),
            })
        }
    }
}
