//! The public half of the fleet's agent-update signing key, pinned on each device at
//! enrollment: `enroll` copies `<store-dir>/enrollment/ota-signing.pub` (when the operator
//! created it, see docs/deploy.md "Upgrade the agent") into the bundle, and
//! `edge-agent install --bundle` puts it where `edge-agent ota stage` reads it.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::error::{EnrollmentError, Result};
use super::layout::EnrollmentLayout;
use super::private_file::write_public;

/// The file name in the store and in the bundle.
pub const OTA_PUBLIC_KEY: &str = "ota-signing.pub";

/// The DER SubjectPublicKeyInfo of an ed25519 key is 44 bytes: 60 base64 characters.
const ED25519_SPKI_BASE64_PREFIX: &str = "MCowBQYDK2VwAyEA";

/// The fleet's agent-update public key (ed25519), as the gateway checks releases with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetUpdateKey([u8; 32]);

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl FleetUpdateKey {
    /// From the PEM `PUBLIC KEY` block `openssl pkey -pubout` writes for an ed25519 key.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self> {
        let bad = |reason: &str| EnrollmentError::BadPem {
            path: path.to_owned(),
            what: "ed25519 public key",
            reason: format!(
                "{reason}: expected the output of `openssl pkey -pubout` of an ed25519 key"
            ),
        };
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PUBLIC KEY-----")
            .collect();
        if !body.starts_with(ED25519_SPKI_BASE64_PREFIX) || body.len() != 60 {
            return Err(bad("not an ed25519 public key"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|_| bad("the PEM body is not base64"))?;
        let key = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| bad("not an ed25519 public key"))?;
        Ok(Self(key))
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
        &self.0
    }

    /// Whether `signature` is this key's signature over the manifest of `version` and
    /// `sha256_hex` ([`edge_protocol::signed_manifest`]), the check each device makes.
    pub fn verifies(&self, version: &str, sha256_hex: &str, signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, self.0)
            .verify(
                edge_protocol::signed_manifest(version, sha256_hex).as_bytes(),
                signature,
            )
            .is_ok()
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
