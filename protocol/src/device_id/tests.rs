use super::*;

#[test]
fn accepts_dns1123_subdomains() {
    for ok in ["pi-01", "a", "jetson.lab-3", "0", "x".repeat(253).as_str()] {
        assert!(DeviceId::new(ok).is_ok(), "{ok} should be valid");
    }
}

#[test]
fn rejects_hostile_and_invalid_ids() {
    assert_eq!(DeviceId::new(""), Err(DeviceIdError::Empty));
    assert!(matches!(
        DeviceId::new("x".repeat(254)),
        Err(DeviceIdError::TooLong { len: 254 })
    ));
    for (bad, ch) in [
        ("pi+", '+'),
        ("pi#", '#'),
        ("a/b", '/'),
        ("Pi", 'P'),
        ("pï", 'ï'),
    ] {
        match DeviceId::new(bad) {
            Err(DeviceIdError::InvalidCharacter { found, .. }) => assert_eq!(found, ch),
            other => panic!("{bad}: {other:?}"),
        }
    }
    for bad in ["-pi", "pi-", ".pi", "pi.", "a..b"] {
        assert!(
            matches!(
                DeviceId::new(bad),
                Err(DeviceIdError::BadLabelBoundary { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn error_messages_say_what_is_allowed() {
    let msg = DeviceId::new("Pi").unwrap_err().to_string();
    assert!(msg.contains("lower-case"), "{msg}");
}

#[test]
fn deserializing_validates() {
    assert!(serde_json::from_str::<DeviceId>("\"pi-1\"").is_ok());
    assert!(serde_json::from_str::<DeviceId>("\"edge/v1/#\"").is_err());
}
