#![allow(clippy::unwrap_used)]
use super::*;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// The fleet key's PEM of each test key, by its raw bytes.
fn pem_of(key: &FleetUpdateKey) -> String {
    pem_of_raw(key.raw())
}

/// An ed25519 public key as `openssl pkey -pubout` writes it.
fn pem_of_raw(raw: &[u8]) -> String {
    let mut der = edge_protocol::ota_signature::ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// Puts the fleet's public key where the gateway's store keeps it.
fn pin(store: &Path, key: &FleetUpdateKey) {
    let layout = crate::enrollment::layout::EnrollmentLayout::new(store);
    std::fs::create_dir_all(layout.root()).unwrap();
    std::fs::write(
        layout
            .root()
            .join(crate::enrollment::ota_key::OTA_PUBLIC_KEY),
        pem_of(key),
    )
    .unwrap();
}

#[test]
fn a_release_copied_in_by_hand_that_devices_would_refuse_is_not_served() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (pair, key) = fleet_key();
    let catalog = ReleaseCatalog::new(store.path());
    let (binary, sig) = signed(work.path(), &pair, "2.0", b"agent");
    catalog
        .add(&key, "2.0", "arm64", &binary, &sig, false)
        .unwrap();
    let (_, other) = fleet_key();
    pin(store.path(), &other);
    assert!(matches!(
        catalog.release("2.0", "arm64"),
        Err(CatalogError::SignatureMismatch { .. })
    ));
}

/// A fleet key pair: the private half, and the public half as the gateway loads it.
pub(crate) fn fleet_key() -> (Ed25519KeyPair, FleetUpdateKey) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let pem = pem_of_raw(pair.public_key().as_ref());
    let key = FleetUpdateKey::from_pem(&pem, Path::new("test.pub")).unwrap();
    (pair, key)
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A binary and its signature file (raw, as openssl writes it) in `dir`.
fn signed(dir: &Path, pair: &Ed25519KeyPair, version: &str, bytes: &[u8]) -> (PathBuf, PathBuf) {
    let binary = dir.join(format!("bin-{version}"));
    std::fs::write(&binary, bytes).unwrap();
    let manifest = edge_protocol::signed_manifest(version, &sha256_hex(bytes));
    let sig = dir.join(format!("bin-{version}.sig"));
    std::fs::write(&sig, pair.sign(manifest.as_bytes()).as_ref()).unwrap();
    (binary, sig)
}

#[test]
fn an_added_release_is_served_whole_in_chunks() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (pair, key) = fleet_key();
    let bytes: Vec<u8> = (0..(AGENT_UPDATE_CHUNK_BYTES as usize * 2 + 100))
        .map(|i| (i % 251) as u8)
        .collect();
    let (binary, sig) = signed(work.path(), &pair, "2.0", &bytes);
    let catalog = ReleaseCatalog::new(store.path());
    assert!(matches!(
        catalog.release("2.0", "arm64"),
        Err(CatalogError::Missing { .. })
    ));
    let added = catalog
        .add(&key, "2.0", "arm64", &binary, &sig, false)
        .unwrap();
    assert_eq!(added.sha256, sha256_hex(&bytes));
    assert!(
        matches!(catalog.release("2.0", "arm64"), Err(CatalogError::NoKey)),
        "not served without the fleet key to check it"
    );
    pin(store.path(), &key);
    let release = catalog.release("2.0", "arm64").unwrap();
    assert_eq!(
        (release.size, &release.sha256),
        (bytes.len() as u64, &added.sha256)
    );
    assert!(key.verifies("2.0", &release.sha256, &release.signature));
    let mut whole = Vec::new();
    let mut offset = 0;
    while offset < release.size {
        let chunk = catalog
            .read_chunk(&release, offset, AGENT_UPDATE_CHUNK_BYTES * 4)
            .unwrap();
        assert!(chunk.len() as u64 <= AGENT_UPDATE_CHUNK_BYTES);
        offset += chunk.len() as u64;
        whole.extend(chunk);
    }
    assert_eq!(whole, bytes);
    assert!(matches!(
        catalog.read_chunk(&release, release.size, 10),
        Err(CatalogError::PastEnd { .. })
    ));
    assert_eq!(catalog.list().len(), 1);
}

#[test]
fn a_release_not_signed_by_the_fleet_key_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_, key) = fleet_key();
    let (other, _) = fleet_key();
    let (binary, sig) = signed(work.path(), &other, "2.0", b"agent");
    let catalog = ReleaseCatalog::new(store.path());
    let err = catalog
        .add(&key, "2.0", "arm64", &binary, &sig, false)
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::SignatureMismatch { .. }),
        "{err}"
    );
    // signed as another version
    let (pair, key) = fleet_key();
    let (binary, sig) = signed(work.path(), &pair, "2.0", b"agent");
    let err = catalog
        .add(&key, "2.1", "arm64", &binary, &sig, false)
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::SignatureMismatch { .. }),
        "{err}"
    );
    assert!(matches!(
        catalog.release("2.1", "arm64"),
        Err(CatalogError::Missing { .. })
    ));
}

#[test]
fn paths_cannot_escape_the_catalog() {
    let store = tempfile::tempdir().unwrap();
    let catalog = ReleaseCatalog::new(store.path());
    assert!(matches!(
        catalog.release("../x", "arm64"),
        Err(CatalogError::BadVersion(_))
    ));
    assert!(matches!(
        catalog.release("1.0", "../../etc"),
        Err(CatalogError::BadArch(_))
    ));
    let missing = catalog.release("1.0", "arm").unwrap_err().to_string();
    assert!(
        missing.contains("edge-gateway agent-release add"),
        "{missing}"
    );
}

#[test]
fn a_release_is_replaced_only_when_forced_and_then_hashed_again() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (pair, key) = fleet_key();
    pin(store.path(), &key);
    let catalog = ReleaseCatalog::new(store.path());
    let (binary, sig) = signed(work.path(), &pair, "2.0", b"first build");
    catalog
        .add(&key, "2.0", "amd64", &binary, &sig, false)
        .unwrap();
    catalog
        .add(&key, "2.0", "amd64", &binary, &sig, false)
        .unwrap();
    let first = catalog.release("2.0", "amd64").unwrap();
    let (binary, sig) = signed(work.path(), &pair, "2.0", b"second, longer build");
    let refused = catalog.add(&key, "2.0", "amd64", &binary, &sig, false);
    assert!(
        matches!(refused, Err(CatalogError::ReplaceRefused { .. })),
        "{refused:?}"
    );
    assert_eq!(
        catalog.release("2.0", "amd64").unwrap().sha256,
        first.sha256
    );
    catalog
        .add(&key, "2.0", "amd64", &binary, &sig, true)
        .unwrap();
    let second = catalog.release("2.0", "amd64").unwrap();
    assert_ne!(first.sha256, second.sha256);
    assert_eq!(second.sha256, sha256_hex(b"second, longer build"));
}
