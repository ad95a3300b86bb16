use super::*;

#[test]
fn reasons_are_the_strings_kubernetes_shows() {
    for (reason, text) in [
        (EventReason::NodeNameConflict, "NodeNameConflict"),
        (EventReason::DeviceRetired, "DeviceRetired"),
        (EventReason::DesiredSetTooLarge, "DesiredSetTooLarge"),
        (
            EventReason::FailedToRetrieveImagePullSecret,
            "FailedToRetrieveImagePullSecret",
        ),
        (EventReason::Failed, "Failed"),
        (EventReason::Reported("BackOff".to_owned()), "BackOff"),
    ] {
        assert_eq!(reason.as_str(), text);
        assert_eq!(reason.to_string(), text);
    }
    assert_eq!(event_type_str(EventType::Warning), "Warning");
    assert_eq!(event_type_str(EventType::Normal), "Normal");
}
