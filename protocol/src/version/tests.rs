use super::*;

#[test]
fn parses_major_minor_only() {
    assert_eq!(
        ProtocolVersion::parse("1.7"),
        Some(ProtocolVersion { major: 1, minor: 7 })
    );
    for bad in [
        "1",
        "1.0.0",
        "v1.0",
        "",
        ".",
        "1.",
        "-1.0",
        "99999999.0",
        "1.x",
    ] {
        assert_eq!(ProtocolVersion::parse(bad), None, "{bad}");
    }
}

#[test]
fn same_major_is_readable() {
    assert!(PROTOCOL_VERSION.can_read(ProtocolVersion { major: 1, minor: 9 }));
    assert!(!PROTOCOL_VERSION.can_read(ProtocolVersion { major: 2, minor: 0 }));
    assert!(!PROTOCOL_VERSION.can_read(ProtocolVersion { major: 0, minor: 9 }));
}
