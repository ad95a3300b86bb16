//! Image pull secrets (`kubernetes.io/dockerconfigjson` and legacy `dockercfg`) into
//! registry credentials.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edge_protocol::RegistryCredential;
use serde_json::Value;

use super::ObjectData;

/// Normalizes a docker config key (`https://index.docker.io/v1/`, `ghcr.io`) to a
/// registry host as image references name it.
pub fn registry_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

fn credential(registry: &str, entry: &Value) -> Option<RegistryCredential> {
    let mut username = entry
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut password = entry
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if username.is_empty() {
        if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
            let decoded = STANDARD.decode(auth).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (u, p) = decoded.split_once(':')?;
            username = u.to_owned();
            password = p.to_owned();
        }
    }
    if username.is_empty() {
        return None;
    }
    Some(RegistryCredential {
        registry: registry_host(registry),
        username,
        password,
    })
}

/// Why a pull secret is unusable (the message follows `image pull secret "<name>"`).
#[derive(Debug, thiserror::Error)]
pub enum PullSecretError {
    #[error("invalid .dockerconfigjson: {0}")]
    InvalidDockerConfigJson(#[source] serde_json::Error),
    #[error("invalid .dockercfg: {0}")]
    InvalidDockerCfg(#[source] serde_json::Error),
    #[error("has neither .dockerconfigjson nor .dockercfg")]
    NoDockerConfig,
    #[error("has no registry entries")]
    NoRegistryEntries,
}

/// Credentials from one pull secret; `Err` says why the secret is unusable.
pub fn credentials_from_secret(
    data: &ObjectData,
) -> Result<Vec<RegistryCredential>, PullSecretError> {
    let auths = if let Some(raw) = data.bytes(".dockerconfigjson") {
        let v: Value =
            serde_json::from_slice(&raw).map_err(PullSecretError::InvalidDockerConfigJson)?;
        v.get("auths").cloned().unwrap_or(Value::Null)
    } else if let Some(raw) = data.bytes(".dockercfg") {
        serde_json::from_slice(&raw).map_err(PullSecretError::InvalidDockerCfg)?
    } else {
        return Err(PullSecretError::NoDockerConfig);
    };
    let Value::Object(map) = auths else {
        return Err(PullSecretError::NoRegistryEntries);
    };
    Ok(map
        .iter()
        .filter_map(|(registry, entry)| credential(registry, entry))
        .collect())
}

#[cfg(test)]
mod tests;
