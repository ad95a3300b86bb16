//! (feature `ota-signature`) How an agent update's signature is checked, one definition
//! for the gateway (which checks releases before it serves them) and the agent (which
//! checks before a slot is ever made current): the fleet's ed25519 public key from its
//! PEM, a signature file's two encodings, and a file's SHA-256.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;

use crate::agent_update::signed_manifest;

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the key follows.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why a PEM is not an ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("no PUBLIC KEY block")]
    NoBlock,
    #[error("the PEM body is not base64")]
    NotBase64,
    #[error("not an ed25519 key")]
    NotEd25519,
}

/// The fleet's agent-update public key (ed25519).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateKey([u8; 32]);

impl UpdateKey {
    /// From the PEM `PUBLIC KEY` block `openssl pkey -pubout` writes for an ed25519 key.
    pub fn from_pem(pem: &str) -> Result<Self, PublicKeyError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PUBLIC KEY-----")
            .collect();
        if body.is_empty() {
            return Err(PublicKeyError::NoBlock);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| PublicKeyError::NotBase64)?;
        der.strip_prefix(&ED25519_SPKI_PREFIX[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .map(Self)
            .ok_or(PublicKeyError::NotEd25519)
    }

    /// The 32 bytes of the key.
    pub fn raw(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `signature` is this key's signature over the manifest of `version` and
    /// `sha256_hex` ([`signed_manifest`]).
    pub fn verifies(&self, version: &str, sha256_hex: &str, signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, self.0)
            .verify(signed_manifest(version, sha256_hex).as_bytes(), signature)
            .is_ok()
    }
}

/// Decodes a signature file: 64 raw bytes (`openssl pkeyutl -sign` output) or their
/// base64; `None` for anything else.
pub fn decode_signature(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() == SIGNATURE_LEN {
        return Some(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    (raw.len() == SIGNATURE_LEN).then_some(raw)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lowercase hex SHA-256 of a file, read in 64 KiB pieces (bounded memory).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
    }
    Ok(hex(digest.finish().as_ref()))
}

#[cfg(test)]
mod tests;
