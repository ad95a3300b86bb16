use super::*;

#[test]
fn ready_only_with_a_working_store_and_a_connection() {
    let h = Health::default();
    assert_eq!(h.problems().len(), 1, "not connected yet");
    h.set_mqtt_connected(true);
    assert!(h.problems().is_empty());
    h.store_failed("No space left on device");
    assert!(h.problems()[0].contains("No space left"));
    h.store_ok();
    assert!(h.problems().is_empty());
}
