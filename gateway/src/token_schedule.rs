//! Service account tokens of device pods (pure): the tokens held per pod, audience and
//! expiry, and when each is due for a new one: when 80 % of its lifetime has passed, or
//! after 24 h, as the kubelet's token manager decides. The pod watch asks the
//! TokenRequest API for due tokens and delivers them as a file update.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::translation::TokenSpec;

/// How long a token is used at most, whatever its expiry (the kubelet's 24 h).
pub const MAX_TOKEN_AGE_SECONDS: i64 = 24 * 60 * 60;

/// A token of one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    pub pod_uid: String,
    pub spec: TokenSpec,
}

/// A token the API server issued: secret text, never logged (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds (the TokenRequest's `status.expirationTimestamp`).
    pub expires_at: i64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl IssuedToken {
    /// When a new token is wanted: at 80 % of the lifetime, and no later than 24 h after
    /// issue.
    pub fn refresh_at(&self) -> i64 {
        let lifetime = (self.expires_at - self.issued_at).max(0);
        let at_80 = self.issued_at + lifetime * 4 / 5;
        at_80.min(self.issued_at + MAX_TOKEN_AGE_SECONDS)
    }

    /// Whether the token is still good to hand out at `now`.
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.refresh_at() && now < self.expires_at
    }
}

/// Tokens held for device pods.
#[derive(Debug, Default)]
pub struct TokenBook {
    tokens: BTreeMap<TokenKey, IssuedToken>,
}

impl TokenBook {
    /// The token for `key`, if one is held and not yet due.
    pub fn fresh(&self, key: &TokenKey, now: i64) -> Option<&IssuedToken> {
        self.tokens.get(key).filter(|t| t.is_fresh(now))
    }

    /// Keeps a newly issued token.
    pub fn store(&mut self, key: TokenKey, token: IssuedToken) {
        self.tokens.insert(key, token);
    }

    /// Pods holding a token that is due at `now` (translate them again: the translation
    /// asks for new tokens).
    pub fn due_pods(&self, now: i64) -> BTreeSet<String> {
        self.tokens
            .iter()
            .filter(|(_, t)| !t.is_fresh(now))
            .map(|(k, _)| k.pod_uid.clone())
            .collect()
    }

    /// The earliest refresh time of all tokens held.
    pub fn next_refresh(&self) -> Option<i64> {
        self.tokens.values().map(IssuedToken::refresh_at).min()
    }

    /// Keeps only the tokens of pod `uid` whose spec is in `specs` (the pod's volumes now).
    pub fn retain_pod(&mut self, uid: &str, specs: &BTreeSet<TokenSpec>) {
        self.tokens
            .retain(|k, _| k.pod_uid != uid || specs.contains(&k.spec));
    }

    /// Drops every token of pod `uid`.
    pub fn forget_pod(&mut self, uid: &str) {
        self.tokens.retain(|k, _| k.pod_uid != uid);
    }

    /// Number of tokens held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests;
