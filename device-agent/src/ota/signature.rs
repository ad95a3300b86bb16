//! The signature of an agent binary: the gateway's ed25519 key signs a short manifest
//! naming the version and the binary's SHA-256; the device holds the public key pinned
//! at enrollment and checks both before a slot is ever made current.
//!
//! The manifest is plain text, so an operator can sign with OpenSSL 3:
//! `edge-agent-ota v1\nversion=<version>\nsha256=<lowercase hex>\n`.

use std::path::Path;

use edge_protocol::ota_signature::{self, PublicKeyError, UpdateKey};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the OTA public key is not a PEM ed25519 public key (`openssl pkey -pubout` of an ed25519 key): {0}"
    )]
    BadPublicKey(PublicKeyError),
    #[error("the signature is neither 64 raw bytes nor their base64")]
    BadSignatureEncoding,
    #[error(
        "the signature of version {version} (sha256 {sha256}) does not verify with the pinned key"
    )]
    Invalid { version: String, sha256: String },
    #[error(
        "the version `{0}` is empty or has characters other than letters, digits, `.`, `-`, `+`, `_`"
    )]
    BadVersion(String),
}

/// The ed25519 public key pinned on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedKey(UpdateKey);

impl PinnedKey {
    /// From a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo of an ed25519 key).
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        UpdateKey::from_pem(pem)
            .map(Self)
            .map_err(SignatureError::BadPublicKey)
    }

    pub fn read(path: &Path) -> Result<Self, SignatureError> {
        let pem = std::fs::read_to_string(path).map_err(|source| SignatureError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem)
    }
}

/// The text that is signed: the protocol's [`edge_protocol::signed_manifest`], so the
/// `ota stage` command, the MQTT path and the gateway agree on it.
pub use edge_protocol::signed_manifest as manifest;

/// A version may go into the manifest and the state file.
pub fn check_version(version: &str) -> Result<(), SignatureError> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
    if ok {
        Ok(())
    } else {
        Err(SignatureError::BadVersion(version.to_owned()))
    }
}

/// Decodes a signature file: 64 raw bytes (`openssl pkeyutl -sign` output) or their base64.
pub fn decode_signature(bytes: &[u8]) -> Result<Vec<u8>, SignatureError> {
    ota_signature::decode_signature(bytes).ok_or(SignatureError::BadSignatureEncoding)
}

/// The lowercase hex SHA-256 of a file, read in chunks (bounded memory).
pub fn sha256_file(path: &Path) -> Result<String, SignatureError> {
    ota_signature::sha256_file(path).map_err(|source| SignatureError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Checks that `signature` signs the manifest of `version` and the file's digest; the
/// digest on success.
pub fn verify_file(
    key: &PinnedKey,
    version: &str,
    binary: &Path,
    signature: &[u8],
) -> Result<String, SignatureError> {
    check_version(version)?;
    let sha256 = sha256_file(binary)?;
    let signature = decode_signature(signature)?;
    if !key.0.verifies(version, &sha256, &signature) {
        return Err(SignatureError::Invalid {
            version: version.to_owned(),
            sha256,
        });
    }
    Ok(sha256)
}

/// Key pairs and signatures for the tests of the OTA modules.
#[cfg(test)]
pub(crate) mod tests;
