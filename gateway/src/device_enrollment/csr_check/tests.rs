use super::*;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn csr(edit: impl FnOnce(&mut CertificateParams)) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "pi-1");
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    edit(&mut params);
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

#[test]
fn a_client_auth_request_for_the_id_passes_with_its_key() {
    let (pem, key) = csr(|_| {});
    let checked = check(&id("pi-1"), &pem).unwrap();
    assert_eq!(checked.spki_der, key.subject_public_key_info());
    // no usages at all is fine too: the gateway decides them
    let (pem, _) = csr(|p| {
        p.key_usages.clear();
        p.extended_key_usages.clear();
    });
    assert!(check(&id("pi-1"), &pem).is_ok());
}

#[test]
fn the_cn_must_be_the_requested_id() {
    let (pem, _) = csr(|_| {});
    assert!(matches!(
        check(&id("pi-2"), &pem),
        Err(CsrRefusal::WrongCommonName { .. })
    ));
    let (pem, _) = csr(|p| p.distinguished_name = DistinguishedName::new());
    assert!(matches!(
        check(&id("pi-1"), &pem),
        Err(CsrRefusal::WrongCommonName { .. })
    ));
}

#[test]
fn server_auth_signing_usages_sans_and_extra_subject_are_refused() {
    let (pem, _) = csr(|p| {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth)
    });
    assert!(matches!(
        check(&id("pi-1"), &pem),
        Err(CsrRefusal::ExtendedKeyUsage(_))
    ));
    let (pem, _) = csr(|p| p.key_usages.push(KeyUsagePurpose::KeyCertSign));
    assert!(matches!(
        check(&id("pi-1"), &pem),
        Err(CsrRefusal::KeyUsage(_))
    ));
    let (pem, _) =
        csr(|p| p.subject_alt_names = vec![SanType::DnsName("pi-1".try_into().unwrap())]);
    assert!(matches!(
        check(&id("pi-1"), &pem),
        Err(CsrRefusal::SubjectAltNames)
    ));
    let (pem, _) = csr(|p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "x")
    });
    assert!(matches!(
        check(&id("pi-1"), &pem),
        Err(CsrRefusal::ExtraSubject(_))
    ));
}

#[test]
fn garbage_and_tampered_requests_are_refused() {
    assert!(matches!(
        check(&id("pi-1"), "not a csr"),
        Err(CsrRefusal::Unparseable(_))
    ));
    let (pem, _) = csr(|_| {});
    // flip one character inside the base64 body: the signature no longer verifies
    let mut lines: Vec<String> = pem.lines().map(str::to_owned).collect();
    let line = &mut lines[3];
    let c = if line.starts_with('A') { 'B' } else { 'A' };
    line.replace_range(0..1, &c.to_string());
    assert!(check(&id("pi-1"), &lines.join("\n")).is_err());
}
