#![allow(clippy::unwrap_used)]
use super::*;
use base64::Engine as _;
use edge_protocol::ota_signature::ED25519_SPKI_PREFIX;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// A key pair and its public key as `openssl pkey -pubout` writes it.
pub(crate) fn key_pair() -> (Ed25519KeyPair, String) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(pair.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    (pair, pem)
}

pub(crate) fn sign(pair: &Ed25519KeyPair, version: &str, binary: &Path) -> Vec<u8> {
    let digest = sha256_file(binary).unwrap();
    pair.sign(manifest(version, &digest).as_bytes())
        .as_ref()
        .to_vec()
}

#[test]
fn a_signed_binary_verifies_raw_and_base64() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("edge-agent");
    std::fs::write(&bin, b"\x7fELF new agent").unwrap();
    let (pair, pem) = key_pair();
    let key = PinnedKey::from_pem(&pem).unwrap();
    let sig = sign(&pair, "0.2.0", &bin);
    let digest = verify_file(&key, "0.2.0", &bin, &sig).unwrap();
    assert_eq!(digest, sha256_file(&bin).unwrap());
    assert_eq!(digest.len(), 64);
    let b64 = format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(&sig)
    );
    verify_file(&key, "0.2.0", &bin, b64.as_bytes()).unwrap();
}

#[test]
fn known_digest() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("f");
    std::fs::write(&bin, b"abc").unwrap();
    assert_eq!(
        sha256_file(&bin).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn a_changed_binary_another_version_or_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("edge-agent");
    std::fs::write(&bin, b"good agent").unwrap();
    let (pair, pem) = key_pair();
    let key = PinnedKey::from_pem(&pem).unwrap();
    let sig = sign(&pair, "0.2.0", &bin);
    // the version is signed too: a signature of 0.2.0 cannot install as 0.3.0
    assert!(matches!(
        verify_file(&key, "0.3.0", &bin, &sig),
        Err(SignatureError::Invalid { .. })
    ));
    let (_, other_pem) = key_pair();
    let other = PinnedKey::from_pem(&other_pem).unwrap();
    assert!(matches!(
        verify_file(&other, "0.2.0", &bin, &sig),
        Err(SignatureError::Invalid { .. })
    ));
    std::fs::write(&bin, b"evil agent").unwrap();
    assert!(matches!(
        verify_file(&key, "0.2.0", &bin, &sig),
        Err(SignatureError::Invalid { .. })
    ));
}

#[test]
fn malformed_inputs_get_typed_errors() {
    assert!(matches!(
        PinnedKey::from_pem("hello"),
        Err(SignatureError::BadPublicKey(_))
    ));
    // an RSA-sized body is not an ed25519 key
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode([0u8; 44])
    );
    assert!(matches!(
        PinnedKey::from_pem(&pem),
        Err(SignatureError::BadPublicKey(PublicKeyError::NotEd25519))
    ));
    assert!(matches!(
        decode_signature(b"not base64 !"),
        Err(SignatureError::BadSignatureEncoding)
    ));
    assert!(matches!(
        decode_signature(b"AAAA"),
        Err(SignatureError::BadSignatureEncoding)
    ));
    assert!(check_version("0.2.0-rc.1+build_7").is_ok());
    for bad in ["", "../x", "a b", "v1\nsha256=00"] {
        assert!(matches!(
            check_version(bad),
            Err(SignatureError::BadVersion(_))
        ));
    }
}
