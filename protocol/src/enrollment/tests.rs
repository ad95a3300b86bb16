use super::*;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

#[test]
fn request_topic_round_trips_and_names_the_client_id() {
    let device = id("pi-00000000abcdef01");
    let topic = bootstrap_request_topic(&device);
    assert_eq!(
        topic,
        "edge/bootstrap/v1/bootstrap_pi-00000000abcdef01/request"
    );
    assert_eq!(parse_bootstrap_request_topic(&topic).unwrap(), device);
    assert_eq!(
        bootstrap_response_topic(&device),
        "edge/bootstrap/v1/bootstrap_pi-00000000abcdef01/response"
    );
    // the client id is never a valid device id, so it cannot take over a device's session
    assert!(DeviceId::new(bootstrap_client_id(&device)).is_err());
}

#[test]
fn other_topics_are_not_requests() {
    for topic in [
        "edge/bootstrap/v1/pi-1/request",
        "edge/bootstrap/v1/bootstrap_pi-1/response",
        "edge/bootstrap/v1/bootstrap_pi-1/x/request",
        "edge/v1/pi-1/up/hello",
        "edge/bootstrap/v1/bootstrap_/request",
        "edge/bootstrap/v1/bootstrap_Pi_1/request",
    ] {
        assert!(parse_bootstrap_request_topic(topic).is_err(), "{topic}");
    }
}

#[test]
fn acl_patterns_are_keyed_by_the_client_id() {
    assert_eq!(
        bootstrap_acl_patterns(),
        [
            "pattern write edge/bootstrap/v1/%c/request".to_owned(),
            "pattern read edge/bootstrap/v1/%c/response".to_owned(),
        ]
    );
    assert_eq!(bootstrap_subscription(), "edge/bootstrap/v1/+/request");
}

#[test]
fn request_and_reply_round_trip_and_the_token_is_not_in_debug_output() {
    let request = CertificateRequest {
        device_id: id("pi-1"),
        bootstrap_token: "abcdef.0123456789abcdef".to_owned(),
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n...".to_owned(),
        id_source: Some("serial".to_owned()),
    };
    let bytes = request.encode();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("\"kind\":\"certificateRequest\""), "{text}");
    assert!(text.contains("\"bootstrapToken\""), "{text}");
    assert_eq!(CertificateRequest::decode(&bytes).unwrap(), request);
    assert!(!format!("{request:?}").contains("0123456789abcdef"));

    for reply in [
        CertificateReply::Pending {
            request_name: "edge-pi-1-0011".to_owned(),
            message: "waiting".to_owned(),
        },
        CertificateReply::Issued {
            request_name: "edge-pi-1-0011".to_owned(),
            certificate_pem: "cert".to_owned(),
            ca_pem: "ca".to_owned(),
        },
        CertificateReply::Refused {
            reason: RefusalReason::TokenExpired,
            message: "expired".to_owned(),
        },
    ] {
        assert_eq!(CertificateReply::decode(&reply.encode()).unwrap(), reply);
    }
    let refused = String::from_utf8(
        CertificateReply::Refused {
            reason: RefusalReason::DuplicateId,
            message: String::new(),
        }
        .encode(),
    )
    .unwrap();
    assert!(
        refused.contains("\"state\":\"refused\"") && refused.contains("\"reason\":\"duplicateId\""),
        "{refused}"
    );
}

#[test]
fn wrong_kind_version_and_size_are_refused() {
    let reply = CertificateReply::Refused {
        reason: RefusalReason::Denied,
        message: String::new(),
    };
    assert!(matches!(
        CertificateRequest::decode(&reply.encode()),
        Err(EnrollmentDecodeError::WrongKind { .. })
    ));
    let v2 = br#"{"protocol":"2.0","kind":"certificateReply","body":{"state":"refused","reason":"denied","message":""}}"#;
    assert!(matches!(
        CertificateReply::decode(v2),
        Err(EnrollmentDecodeError::Version(_))
    ));
    let big = vec![b' '; MAX_ENROLLMENT_PAYLOAD_BYTES + 1];
    assert!(matches!(
        CertificateReply::decode(&big),
        Err(EnrollmentDecodeError::TooLarge(_))
    ));
}

#[test]
fn renewal_topics_are_the_device_s_own() {
    let device = id("pi-1");
    assert_eq!(renewal_request_topic(&device), "edge/v1/pi-1/up/csr");
    assert_eq!(
        renewal_response_topic(&device),
        "edge/v1/pi-1/down/certificate"
    );
    assert_eq!(
        parse_renewal_request_topic("edge/v1/pi-1/up/csr"),
        Some(device)
    );
    for other in [
        "edge/v1/pi-1/up/hello",
        "edge/v1/pi-1/down/certificate",
        "edge/v1/a/b/up/csr",
        "edge/v1/Pi_1/up/csr",
        "edge/bootstrap/v1/bootstrap_pi-1/request",
    ] {
        assert_eq!(parse_renewal_request_topic(other), None, "{other}");
    }
}
