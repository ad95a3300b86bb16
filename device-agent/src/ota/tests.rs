#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn the_version_is_the_slots_under_the_supervisor_else_the_builds() {
    let build = env!("CARGO_PKG_VERSION");
    assert_eq!(version_of(true, Some("0.9.1".into())), "0.9.1");
    assert_eq!(version_of(true, None), build, "the installed binary");
    assert_eq!(version_of(true, Some(String::new())), build);
    assert_eq!(version_of(false, Some("0.9.1".into())), build);
}

#[test]
fn only_a_supervised_agent_with_a_pinned_key_can_update_itself() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ota-signing.pub");
    let why = capability_of(true, &key).unwrap_err();
    assert!(
        why.contains("no OTA public key") && why.contains("ota-signing.pub"),
        "{why}"
    );
    std::fs::write(&key, "pem").unwrap();
    assert_eq!(capability_of(true, &key), Ok(()));
    let why = capability_of(false, &key).unwrap_err();
    assert!(why.contains("edge-agent supervise"), "{why}");
}
