use super::*;
use ring::signature::KeyPair as _;

fn key_pair() -> ring::signature::Ed25519KeyPair {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn pem_of(pair: &ring::signature::Ed25519KeyPair) -> String {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(pair.public_key().as_ref());
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
}

#[test]
fn a_signature_over_the_manifest_verifies_and_nothing_else_does() {
    let pair = key_pair();
    let key = UpdateKey::from_pem(&pem_of(&pair)).unwrap();
    let sha = "ab".repeat(32);
    let signature = pair.sign(signed_manifest("1.2.0", &sha).as_bytes());
    assert!(key.verifies("1.2.0", &sha, signature.as_ref()));
    assert!(!key.verifies("1.2.1", &sha, signature.as_ref()));
    assert!(!key.verifies("1.2.0", &"cd".repeat(32), signature.as_ref()));
    let other = UpdateKey::from_pem(&pem_of(&key_pair())).unwrap();
    assert!(!other.verifies("1.2.0", &sha, signature.as_ref()));
}

#[test]
fn keys_that_are_not_ed25519_pems_are_refused_with_why() {
    assert_eq!(UpdateKey::from_pem("hello"), Err(PublicKeyError::NoBlock));
    assert_eq!(
        UpdateKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"),
        Err(PublicKeyError::NotBase64)
    );
    // an RSA-looking DER
    let body = base64::engine::general_purpose::STANDARD.encode([0x30u8, 0x82, 1, 2, 3]);
    assert_eq!(
        UpdateKey::from_pem(&format!(
            "-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"
        )),
        Err(PublicKeyError::NotEd25519)
    );
}

#[test]
fn signatures_come_raw_or_in_base64() {
    let raw = vec![7u8; SIGNATURE_LEN];
    assert_eq!(decode_signature(&raw), Some(raw.clone()));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    assert_eq!(decode_signature(format!("{b64}\n").as_bytes()), Some(raw));
    assert_eq!(decode_signature(b"short"), None);
    assert_eq!(decode_signature(&[0xff; 10]), None);
}

#[test]
fn a_files_digest_is_its_sha256() {
    let dir = std::env::temp_dir().join(format!("ota-sig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, b"abc").unwrap();
    assert_eq!(
        sha256_file(&path).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
