#![allow(clippy::unwrap_used)]
use super::*;
use crate::config::ConfigFile;

fn config(dir: &Path) -> AgentConfig {
    let text = format!(
        r#"
device_id = "ret-1"
broker_urls = ["mqtts://gateway.example.com:8883"]
state_dir = "{0}/state"
[tls]
ca_file = "{0}/etc/ca.pem"
cert_file = "{0}/etc/device.pem"
key_file = "{0}/etc/device.key"
"#,
        dir.display()
    );
    AgentConfig::from_file(ConfigFile::parse(&text).unwrap()).unwrap()
}

#[test]
fn the_state_directory_key_and_certificate_are_deleted_and_the_ca_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let volume = dir.path().join("state/pods/uid-1/volumes/secret-a");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("password"), "s3cret").unwrap();
    std::fs::create_dir_all(dir.path().join("state/store")).unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    for f in ["ca.pem", "device.pem", "device.key"] {
        std::fs::write(dir.path().join("etc").join(f), "pem").unwrap();
    }

    let mut report = WipeReport::default();
    remove_paths(&paths_to_wipe(&cfg), &mut report);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.paths_removed.len(), 3, "{:?}", report.paths_removed);
    assert!(!dir.path().join("state").exists());
    assert!(!dir.path().join("etc/device.key").exists());
    assert!(!dir.path().join("etc/device.pem").exists());
    assert!(dir.path().join("etc/ca.pem").exists());

    // a second wipe (the order delivered again) finds nothing and fails nothing
    let mut again = WipeReport::default();
    remove_paths(&paths_to_wipe(&cfg), &mut again);
    assert!(again.failures.is_empty() && again.paths_removed.is_empty());
}
