//! The public half of the fleet's agent-update signing key, pinned on each device at
//! enrollment: `enroll` copies `<store-dir>/enrollment/ota-signing.pub` (when the operator
//! created it, see docs/deploy.md "Upgrade the agent") into the bundle, and
//! `edge-agent install --bundle` puts it where `edge-agent ota stage` reads it.

use std::path::{Path, PathBuf};

use edge_protocol::ota_signature::UpdateKey;

use super::error::{EnrollmentError, Result};
use super::layout::EnrollmentLayout;
use super::private_file::write_public;

/// The file name in the store and in the bundle.
pub const OTA_PUBLIC_KEY: &str = "ota-signing.pub";

/// The fleet's agent-update public key (ed25519), as the gateway checks releases with it
/// (the same check as each device's, [`edge_protocol::ota_signature`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetUpdateKey(UpdateKey);

impl FleetUpdateKey {
    /// From the PEM `PUBLIC KEY` block `openssl pkey -pubout` writes for an ed25519 key.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self> {
        UpdateKey::from_pem(pem)
            .map(Self)
            .map_err(|e| EnrollmentError::BadPem {
                path: path.to_owned(),
                what: "ed25519 public key",
                reason: format!(
                    "{e}: expected the output of `openssl pkey -pubout` of an ed25519 key"
                ),
            })
    }

    /// The fleet's key from the enrollment store; `None` when the operator has not
    /// created it.
    pub fn load(layout: &EnrollmentLayout) -> Result<Option<Self>> {
        let path = layout.root().join(OTA_PUBLIC_KEY);
        match std::fs::read_to_string(&path) {
            Ok(pem) => Self::from_pem(&pem, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EnrollmentError::io("read", &path)(e)),
        }
    }

    /// The 32 bytes of the key.
    pub fn raw(&self) -> &[u8; 32] {
        self.0.raw()
    }

    /// Whether `signature` is this key's signature over the manifest of `version` and
    /// `sha256_hex` ([`edge_protocol::signed_manifest`]), the check each device makes.
    pub fn verifies(&self, version: &str, sha256_hex: &str, signature: &[u8]) -> bool {
        self.0.verifies(version, sha256_hex, signature)
    }
}

/// Copies the fleet's OTA public key into `bundle_dir`; the path written, or `None`
/// when the fleet has no OTA key (devices enrolled then refuse agent updates).
pub fn pin_into_bundle(layout: &EnrollmentLayout, bundle_dir: &Path) -> Result<Option<PathBuf>> {
    let source = layout.root().join(OTA_PUBLIC_KEY);
    let pem = match std::fs::read_to_string(&source) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EnrollmentError::io("read", &source)(e)),
    };
    FleetUpdateKey::from_pem(&pem, &source)?;
    let target = bundle_dir.join(OTA_PUBLIC_KEY);
    write_public(&target, pem.as_bytes())?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests;
