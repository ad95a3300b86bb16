//! The public half of the fleet's agent-update signing key, pinned on each device at
//! enrollment: `enroll` copies `<store-dir>/enrollment/ota-signing.pub` (when the operator
//! created it, see docs/deploy.md "Upgrade the agent") into the bundle, and
//! `edge-agent install --bundle` puts it where `edge-agent ota stage` reads it.

use std::path::{Path, PathBuf};

use super::error::{EnrollmentError, Result};
use super::layout::EnrollmentLayout;
use super::private_file::write_public;

/// The file name in the store and in the bundle.
pub const OTA_PUBLIC_KEY: &str = "ota-signing.pub";

/// The DER SubjectPublicKeyInfo of an ed25519 key is 44 bytes: 60 base64 characters.
const ED25519_SPKI_BASE64_PREFIX: &str = "MCowBQYDK2VwAyEA";

/// Copies the fleet's OTA public key into `bundle_dir`; the path written, or `None`
/// when the fleet has no OTA key (devices enrolled then refuse agent updates).
pub fn pin_into_bundle(layout: &EnrollmentLayout, bundle_dir: &Path) -> Result<Option<PathBuf>> {
    let source = layout.root().join(OTA_PUBLIC_KEY);
    let pem = match std::fs::read_to_string(&source) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EnrollmentError::io("read", &source)(e)),
    };
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
        .skip(1)
        .take_while(|l| *l != "-----END PUBLIC KEY-----")
        .collect();
    if !body.starts_with(ED25519_SPKI_BASE64_PREFIX) || body.len() != 60 {
        return Err(EnrollmentError::BadPem {
            path: source,
            what: "ed25519 public key",
            reason: "expected the output of `openssl pkey -pubout` of an ed25519 key".to_owned(),
        });
    }
    let target = bundle_dir.join(OTA_PUBLIC_KEY);
    write_public(&target, pem.as_bytes())?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests;
