use super::*;

#[test]
fn a_device_id_is_claimed_once_at_a_time() {
    let id = format!("claim-test-{}", std::process::id());
    let first = claim_device_id(&id).unwrap();
    let second = claim_device_id(&id);
    assert!(
        matches!(&second, Err(StackError::DeviceIdInUse { device }) if *device == id),
        "{second:?}"
    );
    drop(first);
    claim_device_id(&id).expect("free again once the first claim is dropped");
}
