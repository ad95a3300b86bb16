//! The device bundle: everything a board needs to join the fleet, in one directory that
//! `edge-agent install --bundle <dir>` copies to `/etc/edge-agent/` and the flashing tool
//! writes into a disk image.
//!
//! | file | mode | what |
//! |---|---|---|
//! | `agent.toml` | 0644 | agent configuration: device id, broker URLs, labels, TLS file paths |
//! | `ca.pem` | 0644 | the fleet CA (trust anchor for the broker's server certificate) |
//! | `device.pem` | 0644 | the device's client certificate (CN = device id) |
//! | `device.key` | 0600 | the device's private key |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{EnrollmentError, Result};
use super::fleet_ca::IssuedIdentity;
use super::private_file::{create_dir, write_private, write_public};

/// Where the agent finds the bundle once installed on a device.
pub const DEVICE_CONFIG_DIR: &str = "/etc/edge-agent";

/// `agent.toml` as the agent reads it (see the agent's `--print-default-config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentConfigFile {
    pub device_id: String,
    pub broker_urls: Vec<String>,
    pub state_dir: String,
    pub runtime_socket: String,
    pub heartbeat_interval_seconds: u64,
    pub tls: AgentTlsFiles,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The `[tls]` table: paths on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentTlsFiles {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

impl AgentTlsFiles {
    /// The paths the bundle files have once installed under `/etc/edge-agent/`.
    pub fn installed() -> Self {
        Self {
            ca_file: format!("{DEVICE_CONFIG_DIR}/ca.pem"),
            cert_file: format!("{DEVICE_CONFIG_DIR}/device.pem"),
            key_file: format!("{DEVICE_CONFIG_DIR}/device.key"),
        }
    }
}

/// A bundle directory on the machine that ran `enroll`.
#[derive(Debug, Clone)]
pub struct DeviceBundle {
    dir: PathBuf,
}

impl DeviceBundle {
    pub const CONFIG: &'static str = "agent.toml";
    pub const CA: &'static str = "ca.pem";
    pub const CERT: &'static str = "device.pem";
    pub const KEY: &'static str = "device.key";

    /// Writes a bundle into `dir` (created 0700). Refuses to overwrite an existing
    /// `device.key`: that key may be the only copy of a working device's identity.
    pub fn write(
        dir: &Path,
        config: &AgentConfigFile,
        ca_pem: &str,
        identity: &IssuedIdentity,
    ) -> Result<Self> {
        let key = dir.join(Self::KEY);
        if key.exists() {
            return Err(EnrollmentError::Io {
                action: "write the bundle into",
                path: dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "it already holds a device.key; pick another --out-dir or move the old bundle away",
                ),
            });
        }
        create_dir(dir, 0o700)?;
        let toml = toml::to_string(config)?;
        let header = "# edge-agent configuration, written by `edge-gateway enroll`.\n\
                      # Install on the device with: edge-agent install --bundle <this directory>\n";
        write_private(&key, identity.key_pem.as_bytes())?;
        write_public(&dir.join(Self::CERT), identity.cert_pem.as_bytes())?;
        write_public(&dir.join(Self::CA), ca_pem.as_bytes())?;
        write_public(
            &dir.join(Self::CONFIG),
            format!("{header}{toml}").as_bytes(),
        )?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
