//! Who is calling the kubelet API, decided as the kubelet decides it
//! (`--client-ca-file`, `--authentication-token-webhook`, `--anonymous-auth`):
//!
//! 1. a client certificate verified against `--kubelet-client-ca` (during the TLS
//!    handshake): user = its CN, groups = its O values;
//! 2. otherwise, with `--kubelet-token-auth`, a bearer token checked with a TokenReview
//!    (`authentication.k8s.io/v1`). Like the kubelet, the review names no audiences, so
//!    the API server checks the token against its own audiences; answers are cached;
//! 3. otherwise, with `--kubelet-anonymous-auth`, `system:anonymous` in group
//!    `system:unauthenticated`; without it the request is refused (401).
//!
//! Authenticated users get the group `system:authenticated` added, as the kubelet's
//! authenticator does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

use super::review_cache::ReviewCache;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user of unauthenticated requests when anonymous requests are enabled.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of [`ANONYMOUS_USER`].
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// Token answers kept at most (the oldest go first).
const TOKEN_CACHE_ENTRIES: usize = 8192;

/// An authenticated caller, as a SubjectAccessReview names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The TLS-level identity of a connection: the subject of a client certificate that was
/// verified against --kubelet-client-ca during the handshake.
#[derive(Debug, Clone, Default)]
pub struct ConnectionIdentity {
    /// CN of the verified client certificate.
    pub certificate_cn: Option<String>,
    /// O values of the verified client certificate.
    pub certificate_organizations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("Unauthorized: {hint}")]
    Unauthenticated { hint: &'static str },
    #[error("Unauthorized: the bearer token was not accepted by the API server's TokenReview")]
    InvalidToken,
    #[error(
        "Unauthorized: the TokenReview for the bearer token failed ({0}); check the gateway's API server connection and its RBAC (create tokenreviews)"
    )]
    Review(String),
}

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthnSettings {
    /// Bearer tokens are checked with TokenReview (`--kubelet-token-auth`).
    pub token_webhook: bool,
    /// Requests without credentials run as `system:anonymous` (`--kubelet-anonymous-auth`).
    pub anonymous: bool,
    /// How long a TokenReview answer is reused (`--kubelet-token-cache-ttl`).
    pub token_cache_ttl: Duration,
}

impl Default for AuthnSettings {
    fn default() -> Self {
        Self {
            token_webhook: false,
            anonymous: false,
            token_cache_ttl: Duration::from_secs(120),
        }
    }
}

/// Authenticates kubelet API requests.
#[derive(Clone)]
pub struct Authenticator {
    client: kube::Client,
    settings: AuthnSettings,
    tokens: Arc<ReviewCache<Option<UserInfo>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .field("cached_tokens", &self.tokens.len())
            .finish()
    }
}

fn add_authenticated_group(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        user.groups.push(AUTHENTICATED_GROUP.to_owned());
    }
    user
}

/// The bearer token of an `Authorization` header value, if it carries one.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authenticator {
    pub fn new(client: kube::Client, settings: AuthnSettings) -> Self {
        Self {
            client,
            settings,
            tokens: Arc::new(ReviewCache::new(TOKEN_CACHE_ENTRIES)),
        }
    }

    fn hint(&self) -> &'static str {
        if self.settings.token_webhook {
            "present a client certificate signed by the gateway's --kubelet-client-ca or a bearer token the API server accepts"
        } else {
            "present a client certificate signed by the gateway's --kubelet-client-ca (bearer tokens need --kubelet-token-auth)"
        }
    }

    /// Who is calling: the certificate's subject, the token's user, or the anonymous user.
    pub async fn authenticate(
        &self,
        identity: &ConnectionIdentity,
        authorization: Option<&str>,
    ) -> Result<UserInfo, AuthnError> {
        if let Some(cn) = identity.certificate_cn.as_ref().filter(|cn| !cn.is_empty()) {
            return Ok(add_authenticated_group(UserInfo {
                username: cn.clone(),
                groups: identity.certificate_organizations.clone(),
                ..Default::default()
            }));
        }
        if self.settings.token_webhook
            && let Some(token) = bearer_token(authorization)
        {
            return match self.review_token(token).await? {
                Some(user) => Ok(add_authenticated_group(user)),
                None => Err(AuthnError::InvalidToken),
            };
        }
        if self.settings.anonymous {
            return Ok(UserInfo {
                username: ANONYMOUS_USER.to_owned(),
                groups: vec![UNAUTHENTICATED_GROUP.to_owned()],
                ..Default::default()
            });
        }
        Err(AuthnError::Unauthenticated { hint: self.hint() })
    }

    /// The user of `token` (None: not authenticated), from the cache or a TokenReview.
    async fn review_token(&self, token: &str) -> Result<Option<UserInfo>, AuthnError> {
        if let Some(cached) = self.tokens.get(token, Instant::now()) {
            return Ok(cached);
        }
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                // none: the API server's own audiences, as the kubelet asks
                audiences: None,
            },
            ..Default::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthnError::Review(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) if u.username.as_deref().is_some_and(|n| !n.is_empty()) => {
                Some(UserInfo {
                    username: u.username.unwrap_or_default(),
                    uid: u.uid.filter(|s| !s.is_empty()),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default(),
                })
            }
            _ => None,
        };
        self.tokens.insert(
            token.to_owned(),
            user.clone(),
            self.settings.token_cache_ttl,
            Instant::now(),
        );
        Ok(user)
    }
}

#[cfg(test)]
mod tests;
