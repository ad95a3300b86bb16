use super::*;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

#[test]
fn names_are_stable_per_id_and_key_and_valid() {
    let a = csr_name(&id("pi-1"), &[0xab, 0xcd, 0xef, 0x01, 0x23, 0x45]);
    assert_eq!(a, "edge-pi-1-abcdef0123");
    assert_ne!(a, csr_name(&id("pi-1"), &[0xab, 0xcd, 0xef, 0x01, 0x24]));
    let long =
        "a".repeat(63) + "." + &"b".repeat(63) + "." + &"c".repeat(63) + "." + &"d".repeat(61);
    let name = csr_name(&id(&long), &[1, 2, 3, 4, 5]);
    assert!(name.len() <= 253, "{}", name.len());
}

#[test]
fn the_object_names_signer_usages_device_and_token() {
    let csr = build(
        "edge-pi-1-00",
        &id("pi-1"),
        "abcdef",
        Some("serial"),
        "PEM",
        3600,
    );
    assert_eq!(csr.spec.signer_name, SIGNER_NAME);
    assert_eq!(
        csr.spec.usages.as_deref(),
        Some(&["digital signature".to_owned(), "client auth".to_owned()][..])
    );
    assert_eq!(csr.spec.expiration_seconds, Some(3600));
    assert_eq!(csr.metadata.labels.unwrap()[DEVICE_ID_LABEL], "pi-1");
    let annotations = csr.metadata.annotations.unwrap();
    assert_eq!(annotations[TOKEN_ID_ANNOTATION], "abcdef");
    assert_eq!(annotations[ID_SOURCE_ANNOTATION], "serial");
}

fn with(conditions: &[(&str, &str)], cert: Option<&str>) -> CertificateSigningRequest {
    let mut csr = build("n", &id("pi-1"), "abcdef", None, "PEM", 60);
    csr.status = Some(CertificateSigningRequestStatus {
        conditions: Some(
            conditions
                .iter()
                .map(|(t, s)| CertificateSigningRequestCondition {
                    type_: t.to_string(),
                    status: s.to_string(),
                    reason: Some("R".into()),
                    message: Some("M".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        certificate: cert.map(|c| ByteString(c.as_bytes().to_vec())),
    });
    csr
}

#[test]
fn state_follows_conditions_and_certificate() {
    assert_eq!(
        state(&build("n", &id("pi-1"), "t", None, "P", 60)),
        CsrState::Pending
    );
    assert_eq!(
        state(&with(&[("Approved", "False")], None)),
        CsrState::Pending
    );
    assert_eq!(
        state(&with(&[("Approved", "True")], None)),
        CsrState::Approved
    );
    assert_eq!(
        state(&with(&[("Approved", "True")], Some("CERT"))),
        CsrState::Issued("CERT".into())
    );
    assert!(matches!(
        state(&with(&[("Denied", "True")], None)),
        CsrState::Denied { .. }
    ));
    assert!(matches!(
        state(&with(&[("Approved", "True"), ("Failed", "True")], None)),
        CsrState::Failed { .. }
    ));
    let approved = approved(
        build("n", &id("pi-1"), "t", None, "P", 60),
        AUTO_APPROVE_REASON,
        "rule abcdef=pi-*",
    );
    assert_eq!(state(&approved), CsrState::Approved);
    let c = &approved.status.unwrap().conditions.unwrap()[0];
    assert_eq!(c.reason.as_deref(), Some(AUTO_APPROVE_REASON));
}

#[test]
fn an_ended_or_unreadable_certificate_counts_as_ended() {
    let layout_dir = tempfile::tempdir().unwrap();
    let layout = crate::enrollment::EnrollmentLayout::new(layout_dir.path());
    let (ca, _) = crate::enrollment::FleetCa::load_or_create(&layout).unwrap();
    let cert = ca
        .issue_device(&id("carot-e"), std::time::Duration::from_secs(3600))
        .unwrap()
        .cert_pem;
    let now = jiff::Timestamp::now().as_second();
    assert!(!certificate_ended(&cert, now));
    assert!(certificate_ended(&cert, now + 2 * 3600));
    assert!(certificate_ended("not a certificate", now));
}
