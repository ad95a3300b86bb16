use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

/// Signs `csr_pem` as a CA would (rcgen), with the CN the caller chooses.
fn sign(csr_pem: &str, cn: &str) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut req = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    req.params.distinguished_name = name;
    req.signed_by(&issuer).unwrap().pem()
}

#[test]
fn the_key_is_generated_once_private_and_the_csr_names_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let identity = IdentityDir::new(dir.path().join("identity"));
    let key = identity.load_or_generate_key().unwrap();
    let mode = std::fs::metadata(identity.key())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let again = identity.load_or_generate_key().unwrap();
    assert_eq!(
        key.public_key_pem(),
        again.public_key_pem(),
        "key kept across attempts"
    );

    let csr = certificate_request(&id("pi-1"), &key).unwrap();
    let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
    let cn = parsed
        .params
        .distinguished_name
        .get(&DnType::CommonName)
        .cloned();
    assert!(format!("{cn:?}").contains("\"pi-1\""), "{cn:?}");
    assert_eq!(
        parsed.params.extended_key_usages,
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    );
}

#[test]
fn an_issued_certificate_is_stored_only_for_this_id_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let identity = IdentityDir::new(dir.path());
    let key = identity.load_or_generate_key().unwrap();
    let device = id("pi-2");
    let csr = certificate_request(&device, &key).unwrap();
    assert!(identity.current().is_none());

    let wrong_cn = sign(&csr, "pi-3");
    assert!(matches!(
        identity.store_issued(&device, &key, &wrong_cn, "ca"),
        Err(DeviceKeyError::WrongSubject { .. })
    ));
    let other_key = KeyPair::generate().unwrap();
    let other_csr = certificate_request(&device, &other_key).unwrap();
    assert!(matches!(
        identity.store_issued(&device, &key, &sign(&other_csr, "pi-2"), "ca"),
        Err(DeviceKeyError::WrongKey)
    ));
    assert!(identity.current().is_none(), "nothing stored on refusal");

    let good = sign(&csr, "pi-2");
    let facts = identity.store_issued(&device, &key, &good, "ca").unwrap();
    assert_eq!(facts.common_name, "pi-2");
    let (current, current_facts) = identity.current().unwrap();
    assert_eq!(current, device);
    assert_eq!(current_facts, facts);
}

#[test]
fn a_replaced_key_is_new_private_and_ends_the_old_identity() {
    let dir = tempfile::tempdir().unwrap();
    let identity = IdentityDir::new(dir.path());
    let key = identity.load_or_generate_key().unwrap();
    let device = id("pi-4");
    let csr = certificate_request(&device, &key).unwrap();
    identity
        .store_issued(&device, &key, &sign(&csr, "pi-4"), "ca")
        .unwrap();
    assert!(identity.current().is_some());

    let new = identity.replace_key().unwrap();
    assert_ne!(new.public_key_pem(), key.public_key_pem());
    let mode = std::fs::metadata(identity.key())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        identity.load_or_generate_key().unwrap().public_key_pem(),
        new.public_key_pem(),
        "the new key is the one on disk"
    );
    assert!(
        identity.current().is_none(),
        "the old certificate is not for the new key"
    );
}
