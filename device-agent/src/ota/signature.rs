//! The signature of an agent binary: the gateway's ed25519 key signs a short manifest
//! naming the version and the binary's SHA-256; the device holds the public key pinned
//! at enrollment and checks both before a slot is ever made current.
//!
//! The manifest is plain text, so an operator can sign with OpenSSL 3:
//! `edge-agent-ota v1\nversion=<version>\nsha256=<lowercase hex>\n`.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;
use ring::signature::{ED25519, UnparsedPublicKey};

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const SIGNATURE_LEN: usize = 64;
const READ_CHUNK: usize = 64 * 1024;

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
    BadPublicKey(&'static str),
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
pub struct PinnedKey([u8; 32]);

impl PinnedKey {
    /// From a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo of an ed25519 key).
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PUBLIC KEY-----")
            .collect();
        if body.is_empty() {
            return Err(SignatureError::BadPublicKey("no PUBLIC KEY block"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| SignatureError::BadPublicKey("the PEM body is not base64"))?;
        let key = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .ok_or(SignatureError::BadPublicKey("not an ed25519 key"))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| SignatureError::BadPublicKey("wrong key length"))?;
        Ok(Self(key))
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
    if bytes.len() == SIGNATURE_LEN {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| SignatureError::BadSignatureEncoding)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| SignatureError::BadSignatureEncoding)?;
    if raw.len() == SIGNATURE_LEN {
        Ok(raw)
    } else {
        Err(SignatureError::BadSignatureEncoding)
    }
}

/// The lowercase hex SHA-256 of a file, read in chunks (bounded memory).
pub fn sha256_file(path: &Path) -> Result<String, SignatureError> {
    let io = |source| SignatureError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
    }
    Ok(digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
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
    UnparsedPublicKey::new(&ED25519, key.0)
        .verify(manifest(version, &sha256).as_bytes(), &signature)
        .map_err(|_| SignatureError::Invalid {
            version: version.to_owned(),
            sha256: sha256.clone(),
        })?;
    Ok(sha256)
}

/// Key pairs and signatures for the tests of the OTA modules.
#[cfg(test)]
pub(crate) mod tests;
