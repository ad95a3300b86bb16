use super::*;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn certs_in(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// A store with a fleet CA and one device `carot-a` enrolled under it.
fn store_with_device() -> (tempfile::TempDir, EnrollmentLayout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = EnrollmentLayout::new(dir.path());
    let (ca, _) = FleetCa::load_or_create(&layout).unwrap();
    let cert = ca
        .issue_device(&id("carot-a"), Duration::from_secs(3600))
        .unwrap();
    IssuedCertificates::new(&layout)
        .record(&id("carot-a"), &cert.cert_pem)
        .unwrap();
    (dir, layout)
}

#[test]
fn outside_a_rotation_the_bundle_is_the_fleet_ca() {
    let (_dir, layout) = store_with_device();
    assert!(!under_way(&layout));
    let bundle = trust_bundle_pem(&layout).unwrap();
    assert_eq!(bundle, std::fs::read_to_string(layout.ca_cert()).unwrap());
    let s = status(&layout).unwrap();
    assert_eq!(s.on_fleet_ca, vec![id("carot-a")]);
    assert!(matches!(
        finish(&layout, false),
        Err(RotationError::NotUnderWay)
    ));
}

#[test]
fn begin_issues_from_a_new_ca_and_trusts_both() {
    let (_dir, layout) = store_with_device();
    let old_ca = std::fs::read_to_string(layout.ca_cert()).unwrap();
    let s = begin(&layout).unwrap();
    assert!(s.under_way);
    let new_ca = std::fs::read_to_string(layout.ca_cert()).unwrap();
    assert_ne!(old_ca, new_ca);
    assert_eq!(
        std::fs::read_to_string(layout.previous_ca_layout().ca_cert()).unwrap(),
        old_ca
    );
    let bundle = std::fs::read_to_string(layout.trust_bundle()).unwrap();
    assert_eq!(certs_in(&bundle), 2);
    assert!(bundle.contains(new_ca.trim()) && bundle.contains(old_ca.trim()));
    assert_eq!(s.on_previous, vec![id("carot-a")]);
    assert!(s.on_fleet_ca.is_empty());
    // The server certificate stays under the previous CA, which every device trusts.
    let server = server_certificate_ca(&layout).unwrap();
    assert_eq!(server.cert_pem(), old_ca);
    assert!(matches!(
        begin(&layout),
        Err(RotationError::AlreadyUnderWay(_))
    ));
}

#[test]
fn finish_is_refused_while_a_device_holds_a_previous_ca_certificate() {
    let (_dir, layout) = store_with_device();
    begin(&layout).unwrap();
    match finish(&layout, false) {
        Err(e @ RotationError::DevicesOnPreviousCa(_)) => {
            assert!(e.to_string().contains("carot-a"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(under_way(&layout), "nothing dropped");

    // The device renews under the new CA: finish goes through.
    let ca = FleetCa::load(&layout).unwrap();
    let renewed = ca
        .issue_device(&id("carot-a"), Duration::from_secs(3600))
        .unwrap();
    IssuedCertificates::new(&layout)
        .record(&id("carot-a"), &renewed.cert_pem)
        .unwrap();
    let old_gateway = std::fs::read_to_string(layout.gateway_cert()).ok();
    let s = finish(&layout, false).unwrap();
    assert!(!s.under_way);
    assert_eq!(s.on_fleet_ca, vec![id("carot-a")]);
    assert!(!layout.previous_ca_layout().root().exists());
    let bundle = std::fs::read_to_string(layout.trust_bundle()).unwrap();
    assert_eq!(certs_in(&bundle), 1);
    assert_eq!(
        server_certificate_ca(&layout).unwrap().cert_pem(),
        ca.cert_pem()
    );
    let gateway = std::fs::read_to_string(layout.gateway_cert()).unwrap();
    assert_ne!(Some(gateway.clone()), old_gateway);
    let (issuer, _) = issuer_of(&layout.gateway_cert()).unwrap();
    let (subject, _) = subject_der(ca.cert_pem(), &layout.ca_cert()).unwrap();
    assert_eq!(
        issuer, subject,
        "the gateway's identity is under the new CA"
    );
}

#[test]
fn a_forced_finish_names_the_devices_left_behind() {
    let (_dir, layout) = store_with_device();
    begin(&layout).unwrap();
    let s = finish(&layout, true).unwrap();
    assert_eq!(s.on_previous, vec![id("carot-a")]);
    assert!(!under_way(&layout));
    // Its certificate is now of an unknown CA.
    assert_eq!(
        status(&layout).unwrap().expired_or_unknown,
        vec![id("carot-a")]
    );
}
