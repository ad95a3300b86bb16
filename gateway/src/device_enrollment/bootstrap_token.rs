//! Bootstrap tokens, Kubernetes style: `<token-id>.<token-secret>` (the kubelet's
//! `[a-z0-9]{6}.[a-z0-9]{16}`), each a Secret `bootstrap-token-<token-id>` of type
//! `edge-kube.io/bootstrap-token` in the gateway's enrollment namespace with the kubelet's
//! keys (`token-id`, `token-secret`, `expiration` in RFC 3339, `description`) and
//! `usage-device-enrollment: "true"`. Deleting the Secret revokes the token.
//! The check of a presented token against the Secret is pure.

use std::collections::BTreeMap;

/// The Secret type of a bootstrap token.
pub const SECRET_TYPE: &str = "edge-kube.io/bootstrap-token";
/// The Secret name prefix, as the kubelet's `bootstrap-token-<id>`.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The usage key that must be `"true"`.
pub const USAGE_KEY: &str = "usage-device-enrollment";

/// A presented token, split.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken {
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PresentedToken {
    /// Parses `<6 of [a-z0-9]>.<16 of [a-z0-9]>`.
    pub fn parse(token: &str) -> Option<Self> {
        let ok = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        let (id, secret) = token.split_once('.')?;
        (ok(id, 6) && ok(secret, 16)).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The name of the Secret that holds this token.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }
}

/// The outcome of checking a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// Not a token, no such Secret (deleted = revoked), wrong secret, wrong type, or not
    /// for device enrollment. Said as one thing to the device, told apart in the log.
    Invalid(&'static str),
    /// `expiration` is in the past.
    Expired {
        expiration: String,
    },
}

/// Checks `presented` against the Secret's `type` and decoded `data`; `now` in Unix seconds.
pub fn check(
    presented: &PresentedToken,
    secret_type: Option<&str>,
    data: &BTreeMap<String, Vec<u8>>,
    now: i64,
) -> TokenCheck {
    if secret_type != Some(SECRET_TYPE) {
        return TokenCheck::Invalid("the Secret is not of type edge-kube.io/bootstrap-token");
    }
    let get = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    if get("token-id").as_deref() != Some(presented.id.as_str()) {
        return TokenCheck::Invalid("the Secret's token-id does not match");
    }
    let Some(secret) = get("token-secret") else {
        return TokenCheck::Invalid("the Secret has no token-secret");
    };
    if !constant_time_eq(secret.as_bytes(), presented.secret.as_bytes()) {
        return TokenCheck::Invalid("wrong token secret");
    }
    if get(USAGE_KEY).as_deref() != Some("true") {
        return TokenCheck::Invalid(
            "the token is not for device enrollment (usage-device-enrollment)",
        );
    }
    if let Some(expiration) = get("expiration") {
        match expiration.parse::<jiff::Timestamp>() {
            Ok(at) if at.as_second() > now => {}
            Ok(_) => return TokenCheck::Expired { expiration },
            Err(_) => return TokenCheck::Invalid("the Secret's expiration is not RFC 3339"),
        }
    }
    TokenCheck::Valid
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
