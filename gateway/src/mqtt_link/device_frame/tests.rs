use super::*;

fn reason(topic: &str, payload: &[u8]) -> RejectReason {
    match decode(topic, payload, false) {
        Ok(frame) => panic!("decoded {frame:?}"),
        Err(r) => r.reason,
    }
}

#[test]
fn frames_are_typed_by_topic() {
    let hb = Message::from(Heartbeat::default()).encode().unwrap();
    let frame = decode("edge/v1/pi-01/up/heartbeat", &hb, false).unwrap();
    assert_eq!(frame.device.as_str(), "pi-01");
    assert!(matches!(frame.message, DeviceMessage::Heartbeat(_)));
    let state = Message::from(DeviceState::default()).encode().unwrap();
    let frame = decode("edge/v1/pi-01/up/state", &state, true).unwrap();
    assert!(matches!(
        frame.message,
        DeviceMessage::State { retained: true, .. }
    ));
    let tail = Message::from(LogTailReport::default()).encode().unwrap();
    let frame = decode("edge/v1/pi-01/up/logtail", &tail, false).unwrap();
    assert_eq!(
        frame.message,
        DeviceMessage::LogTail(LogTailReport::default())
    );
    assert_eq!(frame.message.kind(), MessageKind::LogTailReport);
}

#[test]
fn bad_frames_are_rejected_with_their_reason() {
    assert_eq!(
        reason("edge/v1/pi-01/up/status", b"\xff\x00"),
        RejectReason::Malformed
    );
    assert_eq!(
        reason("edge/v1/PI/up/status", b"{}"),
        RejectReason::BadTopic
    );
    assert_eq!(
        reason("edge/v1/pi-01/down/desired", b"{}"),
        RejectReason::UnexpectedDirection
    );
    let hb = Message::from(Heartbeat::default()).encode().unwrap();
    assert_eq!(
        reason("edge/v1/pi-01/up/status", &hb),
        RejectReason::WrongTopic
    );
    assert_eq!(RejectReason::Malformed.as_str(), "malformed");
}
