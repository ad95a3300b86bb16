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

#[test]
fn usage_samples_are_decoded_on_up_stats_only() {
    let stats = NodeStats {
        sampled_at: 42,
        ..Default::default()
    };
    let payload = Message::from(stats.clone()).encode().unwrap();
    let frame = decode("edge/v1/pi-01/up/stats", &payload, false).unwrap();
    assert_eq!(frame.message, DeviceMessage::Stats(Box::new(stats)));
    assert_eq!(frame.message.kind(), MessageKind::NodeStats);
    assert_eq!(
        reason("edge/v1/pi-01/up/heartbeat", &payload),
        RejectReason::WrongTopic
    );
}

#[test]
fn stream_messages_are_typed_with_their_stream() {
    use crate::device_streams::DeviceStreamMessage;
    let opened = Message::from(edge_protocol::StreamOpened {
        window_bytes: 5,
        version: None,
    })
    .encode()
    .unwrap();
    let frame = decode("edge/v1/pi-01/up/stream/abc", &opened, false).unwrap();
    assert_eq!(frame.message.kind(), MessageKind::StreamOpened);
    match frame.message {
        DeviceMessage::Stream { stream, message } => {
            assert_eq!(stream.as_str(), "abc");
            assert_eq!(
                message,
                DeviceStreamMessage::Opened(edge_protocol::StreamOpened {
                    window_bytes: 5,
                    version: None,
                })
            );
        }
        other => panic!("{other:?}"),
    }
    // a gateway's message on the device's topic is not accepted
    let resize = Message::from(edge_protocol::StreamResize::default())
        .encode()
        .unwrap();
    assert_eq!(
        reason("edge/v1/pi-01/up/stream/abc", &resize),
        RejectReason::WrongTopic
    );
}

#[test]
fn agent_update_fetches_and_statuses_are_decoded_unless_retained() {
    let fetch = edge_protocol::AgentUpdateFetch {
        version: "2.0".into(),
        offset: 0,
        length: 10,
    };
    let payload = Message::from(fetch.clone()).encode().unwrap();
    let frame = decode("edge/v1/pi-01/up/agent-update", &payload, false).unwrap();
    assert_eq!(
        frame.message,
        DeviceMessage::AgentUpdate(DeviceAgentUpdate::Fetch(fetch))
    );
    assert_eq!(frame.message.kind(), MessageKind::AgentUpdateFetch);
    let status = Message::from(edge_protocol::AgentUpdateStatus::default())
        .encode()
        .unwrap();
    let frame = decode("edge/v1/pi-01/up/agent-update", &status, false).unwrap();
    assert_eq!(frame.message.kind(), MessageKind::AgentUpdateStatus);
    let retained = decode("edge/v1/pi-01/up/agent-update", &status, true).unwrap_err();
    assert_eq!(retained.reason, RejectReason::Malformed);
    assert_eq!(
        reason("edge/v1/pi-01/up/status", &payload),
        RejectReason::WrongTopic
    );
}

#[test]
fn prepull_statuses_are_decoded_unless_retained_and_sets_are_refused() {
    let status = edge_protocol::ImagePrepullStatus {
        revision: "r1".into(),
        images: vec![edge_protocol::PrepullImageStatus {
            image: "app:2".into(),
            phase: edge_protocol::PrepullPhase::Present,
            ..Default::default()
        }],
    };
    let payload = Message::from(status.clone()).encode().unwrap();
    let frame = decode("edge/v1/pi-01/up/prepull", &payload, false).unwrap();
    assert_eq!(frame.message, DeviceMessage::Prepull(status));
    assert_eq!(frame.message.kind(), MessageKind::ImagePrepullStatus);
    let retained = decode("edge/v1/pi-01/up/prepull", &payload, true).unwrap_err();
    assert_eq!(retained.reason, RejectReason::Malformed);
    // a device cannot hand the gateway a set (with logins) as its status
    let set = Message::from(edge_protocol::ImagePrepullSet::default())
        .encode()
        .unwrap();
    assert_eq!(
        reason("edge/v1/pi-01/up/prepull", &set),
        RejectReason::WrongTopic
    );
}
