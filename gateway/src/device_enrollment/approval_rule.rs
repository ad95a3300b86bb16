//! Auto-approval rules (`--enrollment-auto-approve <token-id>=<id pattern>`): a request
//! presented with that bootstrap token for a device id matching the pattern (`*`
//! matches any run of characters) is approved by the gateway, as kube-controller-manager's
//! csrapproving approves kubelet client certificates. Everything else waits for
//! `kubectl certificate approve`. Pure.

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    /// The bootstrap token id, or `*` for any valid token.
    pub token_id: String,
    pub id_pattern: String,
}

/// Why a rule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--enrollment-auto-approve {raw:?}: {reason} (expected <token-id>=<id pattern>, e.g. abcdef=pi-*)"
)]
pub struct ApprovalRuleError {
    pub raw: String,
    pub reason: &'static str,
}

impl std::str::FromStr for ApprovalRule {
    type Err = ApprovalRuleError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let err = |reason| ApprovalRuleError {
            raw: raw.to_owned(),
            reason,
        };
        let (token_id, id_pattern) = raw.split_once('=').ok_or_else(|| err("no '='"))?;
        let token_ok = token_id == "*"
            || (token_id.len() == 6
                && token_id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if !token_ok {
            return Err(err("the token id is 6 of [a-z0-9] or *"));
        }
        if id_pattern.is_empty()
            || !id_pattern
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.*".contains(&b))
        {
            return Err(err(
                "the id pattern is lower-case letters, digits, '-', '.' and '*'",
            ));
        }
        Ok(Self {
            token_id: token_id.to_owned(),
            id_pattern: id_pattern.to_owned(),
        })
    }
}

impl ApprovalRule {
    pub fn matches(&self, token_id: &str, device_id: &str) -> bool {
        (self.token_id == "*" || self.token_id == token_id) && glob(&self.id_pattern, device_id)
    }
}

/// Whether any rule approves `device_id` requested with `token_id`.
pub fn auto_approved<'a>(
    rules: &'a [ApprovalRule],
    token_id: &str,
    device_id: &str,
) -> Option<&'a ApprovalRule> {
    rules.iter().find(|r| r.matches(token_id, device_id))
}

/// `*` matches any run of characters (including none); everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
