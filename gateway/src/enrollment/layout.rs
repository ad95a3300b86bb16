//! Where enrollment keeps its files under the gateway's store directory.

use std::path::{Path, PathBuf};

use edge_protocol::DeviceId;

/// The paths of `<store-dir>/enrollment/` (see the module documentation for the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentLayout {
    root: PathBuf,
}

impl EnrollmentLayout {
    /// The layout under a gateway store directory (`--store-dir`).
    pub fn new(store_dir: impl AsRef<Path>) -> Self {
        Self {
            root: store_dir.as_ref().join("enrollment"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    pub fn issued_dir(&self) -> PathBuf {
        self.root.join("issued")
    }

    pub fn issued_cert(&self, id: &DeviceId) -> PathBuf {
        self.issued_dir().join(format!("{id}.pem"))
    }

    pub fn superseded_dir(&self) -> PathBuf {
        self.root.join("superseded")
    }

    pub fn revoked_list(&self) -> PathBuf {
        self.root.join("revoked.txt")
    }

    pub fn gateway_dir(&self) -> PathBuf {
        self.root.join("gateway")
    }

    pub fn gateway_cert(&self) -> PathBuf {
        self.gateway_dir().join("client.pem")
    }

    pub fn gateway_key(&self) -> PathBuf {
        self.gateway_dir().join("client.key")
    }

    /// The bootstrap CA's own layout (`bootstrap-ca/ca.pem`, `bootstrap-ca/ca.key`): it
    /// issues only the shared bootstrap client certificate of zero-touch enrollment.
    pub fn bootstrap_ca_layout(&self) -> EnrollmentLayout {
        Self {
            root: self.root.join("bootstrap-ca"),
        }
    }

    /// The fleet CA being replaced during a rotation (`previous-ca/ca.pem`,
    /// `previous-ca/ca.key`): still trusted, no longer issuing device certificates.
    pub fn previous_ca_layout(&self) -> EnrollmentLayout {
        Self {
            root: self.root.join("previous-ca"),
        }
    }

    /// `trust-bundle.pem`: every CA a device or the gateway trusts (the fleet CA, and the
    /// previous one during a rotation).
    pub fn trust_bundle(&self) -> PathBuf {
        self.root.join("trust-bundle.pem")
    }

    /// Default output directory of `broker-config mosquitto`.
    pub fn mosquitto_dir(&self) -> PathBuf {
        self.root.join("mosquitto")
    }

    /// Default output directory of `broker-config nats`.
    pub fn nats_dir(&self) -> PathBuf {
        self.root.join("nats")
    }
}
