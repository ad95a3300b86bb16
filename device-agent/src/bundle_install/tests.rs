#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn installs_with_modes_and_refuses_bad_bundles() {
    let bundle = tempfile::tempdir().unwrap();
    let prefix = tempfile::tempdir().unwrap();
    assert!(matches!(
        install(bundle.path(), prefix.path()),
        Err(InstallError::Missing { .. })
    ));
    fs::write(bundle.path().join("agent.toml"), "device_id = \"BAD\"\n").unwrap();
    assert!(matches!(
        install(bundle.path(), prefix.path()),
        Err(InstallError::Config(_))
    ));
    fs::write(
            bundle.path().join("agent.toml"),
            "device_id = \"pi-01\"\nbroker_urls = [\"mqtts://gw:8883\"]\n[tls]\nca_file = \"/etc/edge-agent/ca.pem\"\ncert_file = \"/etc/edge-agent/device.pem\"\nkey_file = \"/etc/edge-agent/device.key\"\n",
        )
        .unwrap();
    for f in ["ca.pem", "device.pem", "device.key", "ota-signing.pub"] {
        fs::write(bundle.path().join(f), f).unwrap();
    }
    let cfg = install(bundle.path(), prefix.path()).unwrap();
    assert!(cfg.ends_with("etc/edge-agent/agent.toml"));
    let key = prefix.path().join("etc/edge-agent/device.key");
    assert_eq!(fs::read(&key).unwrap(), b"device.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ota_key = prefix.path().join("etc/edge-agent/ota-signing.pub");
    assert_eq!(fs::read(&ota_key).unwrap(), b"ota-signing.pub");
    assert_eq!(
        crate::ota::cli_args::DEFAULT_PUBLIC_KEY,
        "/etc/edge-agent/ota-signing.pub",
        "where `ota stage` looks for the pinned key"
    );
    let ca = prefix.path().join("etc/edge-agent/ca.pem");
    assert_eq!(
        fs::metadata(&ca).unwrap().permissions().mode() & 0o777,
        0o644
    );
}
