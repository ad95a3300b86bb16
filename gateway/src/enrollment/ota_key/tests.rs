#![allow(clippy::unwrap_used)]
use super::*;

/// An ed25519 public key as `openssl pkey -pubout` writes it.
const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAArn4eqbeSBsS2iD4oZmH0ZnFgM0ln3VY2RLr2Um80z8=\n-----END PUBLIC KEY-----\n";

#[test]
fn the_fleet_key_is_copied_into_the_bundle() {
    let store = tempfile::tempdir().unwrap();
    let layout = EnrollmentLayout::new(store.path());
    std::fs::create_dir_all(layout.root()).unwrap();
    let bundle = tempfile::tempdir().unwrap();
    assert_eq!(pin_into_bundle(&layout, bundle.path()).unwrap(), None);
    assert!(!bundle.path().join(OTA_PUBLIC_KEY).exists());

    std::fs::write(layout.root().join(OTA_PUBLIC_KEY), PUBLIC_PEM).unwrap();
    let pinned = pin_into_bundle(&layout, bundle.path()).unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(pinned).unwrap(), PUBLIC_PEM);
}

#[test]
fn a_key_of_another_kind_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let layout = EnrollmentLayout::new(store.path());
    std::fs::create_dir_all(layout.root()).unwrap();
    // an EC P-256 public key
    std::fs::write(
        layout.root().join(OTA_PUBLIC_KEY),
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDmMi0bc2XqaAq8Vx5sVZLWlEa3Ac\nAZbgMN1mMEkYrUS5eVKW7M4Dlrw6eD7bMOGdJh5kCRj+8x5kbQqVwu1uCw==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let bundle = tempfile::tempdir().unwrap();
    let err = pin_into_bundle(&layout, bundle.path()).unwrap_err();
    assert!(matches!(err, EnrollmentError::BadPem { .. }), "{err}");
    assert!(!bundle.path().join(OTA_PUBLIC_KEY).exists());
}
