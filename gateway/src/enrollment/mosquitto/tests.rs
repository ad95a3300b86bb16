#![allow(clippy::unwrap_used)]
use super::*;
use edge_protocol::DeviceId;

#[test]
fn acl_has_device_patterns_and_gateway_user() {
    let config = MosquittoConfig {
        listen_address: "0.0.0.0".into(),
        port: 8883,
        files_dir: "/etc/mosquitto/edge".into(),
        run_as_user: None,
    };
    let mut revoked = RevocationList::default();
    revoked.insert(DeviceId::new("pi-9").unwrap());
    let files = config.render(&revoked);
    for p in device_acl_patterns() {
        assert!(files.acl.lines().any(|l| l == p), "{}", files.acl);
    }
    assert!(files.acl.contains("user edge_gateway\ntopic readwrite #\n"));
    assert!(files.acl.contains("#   pi-9"));
    assert!(files.conf.contains("listener 8883 0.0.0.0\n"));
    assert!(files.conf.contains("require_certificate true\n"));
    assert!(files.conf.contains("\nset_tcp_nodelay true\n"));
    assert!(files.conf.contains("max_queued_messages 200000\n"));
    assert!(
        files
            .conf
            .contains(&format!("message_size_limit {BROKER_MAX_PAYLOAD_BYTES}\n"))
    );
    assert!(
        files
            .conf
            .contains(&format!("max_packet_size {MAX_INCOMING_PACKET_BYTES}\n"))
    );
    assert!(files.conf.contains("use_identity_as_username true\n"));
    // The example in deploy/mosquitto shows the same limits.
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/mosquitto/mosquitto.conf.example"),
    )
    .unwrap();
    for line in files
        .conf
        .lines()
        .filter(|l| l.starts_with("message_size_limit ") || l.starts_with("max_packet_size "))
    {
        assert!(
            example.lines().any(|l| l == line),
            "{line} not in the example"
        );
    }
    assert!(files.conf.contains("crlfile /etc/mosquitto/edge/crl.pem\n"));
    assert!(files.conf.contains("acl_file /etc/mosquitto/edge/acl\n"));
}
