//! The bootstrap file: the one file (with its CA and bootstrap client certificate) that
//! is the same on every board of a fleet. Relative paths are relative to the file.
//!
//! ```toml
//! bootstrap_broker_url = "mqtts://gateway.example.com:8884"
//! broker_urls = ["mqtts://gateway.example.com:8883"]
//! ca_file = "ca.pem"
//! bootstrap_cert_file = "bootstrap.pem"
//! bootstrap_key_file = "bootstrap.key"
//! token = "abcdef.0123456789abcdef"
//! device_id_template = "pi-{serial}"
//! identity_dir = "/var/lib/edge-agent/identity"
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::BrokerUrl;

/// Default directory of the device's own key, certificate and CA.
pub const DEFAULT_IDENTITY_DIR: &str = "/var/lib/edge-agent/identity";
/// Default template of the device id.
pub const DEFAULT_ID_TEMPLATE: &str = "edge-{serial}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    bootstrap_broker_url: String,
    #[serde(default)]
    broker_urls: Vec<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    bootstrap_cert_file: Option<PathBuf>,
    #[serde(default)]
    bootstrap_key_file: Option<PathBuf>,
    token: String,
    #[serde(default)]
    device_id_template: Option<String>,
    #[serde(default)]
    identity_dir: Option<PathBuf>,
}

/// Why the bootstrap file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapFileError {
    #[error("cannot read the bootstrap file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the bootstrap file {path} is not valid: {source}")]
    Parse {
        path: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("the bootstrap file {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error(transparent)]
    BrokerUrl(#[from] crate::config::ConfigError),
}

/// The validated bootstrap file.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapFile {
    pub bootstrap_broker: BrokerUrl,
    /// Where the device connects once it has its own certificate.
    pub broker_urls: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub bootstrap_client: Option<(PathBuf, PathBuf)>,
    pub token: String,
    pub device_id_template: String,
    pub identity_dir: PathBuf,
}

impl fmt::Debug for BootstrapFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapFile")
            .field("bootstrap_broker", &self.bootstrap_broker)
            .field("broker_urls", &self.broker_urls)
            .field("token", &"<redacted>")
            .field("device_id_template", &self.device_id_template)
            .field("identity_dir", &self.identity_dir)
            .finish_non_exhaustive()
    }
}

impl BootstrapFile {
    pub fn load(path: &Path) -> Result<Self, BootstrapFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let raw: Raw = toml::from_str(&text).map_err(|source| BootstrapFileError::Parse {
            path: shown.clone(),
            source: Box::new(source),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let invalid = |reason: &str| BootstrapFileError::Invalid {
            path: shown.clone(),
            reason: reason.to_owned(),
        };
        let bootstrap_broker = BrokerUrl::parse(&raw.bootstrap_broker_url)?;
        for url in &raw.broker_urls {
            BrokerUrl::parse(url)?;
        }
        let broker_urls = if raw.broker_urls.is_empty() {
            vec![raw.bootstrap_broker_url.clone()]
        } else {
            raw.broker_urls
        };
        let bootstrap_client = match (raw.bootstrap_cert_file, raw.bootstrap_key_file) {
            (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "bootstrap_cert_file and bootstrap_key_file go together",
                ));
            }
        };
        if bootstrap_broker.tls && raw.ca_file.is_none() {
            return Err(invalid("an mqtts:// bootstrap_broker_url needs ca_file"));
        }
        if !is_token(&raw.token) {
            return Err(invalid(
                "token must look like <6 of [a-z0-9]>.<16 of [a-z0-9]> (edge-gateway bootstrap-token create)",
            ));
        }
        Ok(Self {
            bootstrap_broker,
            broker_urls,
            ca_file: raw.ca_file.map(resolve),
            bootstrap_client,
            token: raw.token,
            device_id_template: raw
                .device_id_template
                .unwrap_or_else(|| DEFAULT_ID_TEMPLATE.to_owned()),
            identity_dir: raw
                .identity_dir
                .map(resolve)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_IDENTITY_DIR)),
        })
    }
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`, the kubelet's bootstrap token format.
pub fn is_token(token: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(token.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

#[cfg(test)]
mod tests;
