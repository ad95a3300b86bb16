#![allow(clippy::unwrap_used)]
use super::*;

fn device() -> DeviceId {
    DeviceId::new("pi-01").unwrap()
}

#[test]
fn desired_resync_and_logs_decode_to_their_variants() {
    let d = device();
    let desired = br#"{"protocol":"1.0","kind":"desiredSet","body":{"generation":3,"pods":[]}}"#;
    match decode(&d, "edge/v1/pi-01/down/desired", desired).unwrap() {
        Downlink::Desired(set) => assert_eq!(set.generation, 3),
        other => panic!("{other:?}"),
    }
    let resync = br#"{"protocol":"1.0","kind":"resyncRequest","body":{"reason":"x"}}"#;
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/resync", resync).unwrap(),
        Downlink::Resync(r) if r.reason == "x"
    ));
    let request =
        br#"{"protocol":"1.0","kind":"logRequest","body":{"podUid":"u","container":"c"}}"#;
    match decode(&d, "edge/v1/pi-01/down/logs/r1", request).unwrap() {
        Downlink::LogRequest { id, request } => {
            assert_eq!(id.as_str(), "r1");
            assert_eq!(request.container, "c");
        }
        other => panic!("{other:?}"),
    }
    let cancel = br#"{"protocol":"1.0","kind":"logCancel","body":{}}"#;
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/logs/r1", cancel).unwrap(),
        Downlink::LogCancel { id } if id.as_str() == "r1"
    ));
}

#[test]
fn frames_for_others_unknown_topics_and_bad_payloads_are_rejected_by_reason() {
    let d = device();
    let desired = br#"{"protocol":"1.0","kind":"desiredSet","body":{"generation":3,"pods":[]}}"#;
    assert!(matches!(
        decode(&d, "edge/v1/pi-02/down/desired", desired),
        Err(RejectReason::NotForThisDevice { .. })
    ));
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/up/status", desired),
        Err(RejectReason::NotForThisDevice { .. })
    ));
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/unknown", b"{}"),
        Err(RejectReason::UnknownTopic(_))
    ));
    for bad in [
        &b"[1,2,3]"[..],
        br#"{"protocol":"2.0","kind":"desiredSet","body":{"generation":99,"pods":[]}}"#,
        br#"{"protocol":"1.0","kind":"heartbeat","body":{"sequence":1}}"#,
        br#"{"protocol":"1.0","kind":"desiredSet","body":{"generation":"many"}}"#,
    ] {
        assert!(
            matches!(
                decode(&d, "edge/v1/pi-01/down/desired", bad),
                Err(RejectReason::Malformed { bytes, .. }) if bytes == bad.len()
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn stream_messages_decode_to_the_stream_variant_with_their_id() {
    use edge_protocol::{
        StdioSelection, StreamClose, StreamCredit, StreamData, StreamOpen, StreamPod, StreamResize,
        StreamTarget, TerminalSize,
    };
    let d = device();
    let open = StreamOpen {
        version: 1,
        target: StreamTarget::Exec {
            pod: StreamPod {
                pod_uid: "u".into(),
                namespace: "ns".into(),
                pod_name: "p".into(),
            },
            container: "c".into(),
            command: vec!["sh".into()],
            stdio: StdioSelection {
                stdin: true,
                stdout: true,
                ..Default::default()
            },
        },
        terminal_size: None,
        window_bytes: 1024,
    };
    let data = StreamData {
        sequence: 4,
        channel: edge_protocol::StreamChannel::Stdin,
        data: b"ls\n".to_vec().into(),
        end: true,
    };
    let cases: Vec<(Message, StreamDownlink)> = vec![
        (open.clone().into(), StreamDownlink::Open(open)),
        (data.clone().into(), StreamDownlink::Data(data)),
        (
            StreamCredit { bytes: 7 }.into(),
            StreamDownlink::Credit(StreamCredit { bytes: 7 }),
        ),
        (
            StreamResize {
                size: TerminalSize {
                    width: 80,
                    height: 24,
                },
            }
            .into(),
            StreamDownlink::Resize(StreamResize {
                size: TerminalSize {
                    width: 80,
                    height: 24,
                },
            }),
        ),
        (
            StreamClose::default().into(),
            StreamDownlink::Close(StreamClose::default()),
        ),
    ];
    for (message, expected) in cases {
        let payload = message.encode().unwrap();
        match decode(&d, "edge/v1/pi-01/down/stream/s-1", &payload).unwrap() {
            Downlink::Stream { id, message } => {
                assert_eq!(id.as_str(), "s-1");
                assert_eq!(message, expected);
            }
            other => panic!("{other:?}"),
        }
    }
    // A device-side answer sent back to the device is not accepted.
    let opened = Message::from(edge_protocol::StreamOpened {
        window_bytes: 1,
        version: None,
    })
    .encode()
    .unwrap();
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/stream/s-1", &opened),
        Err(RejectReason::Malformed { .. } | RejectReason::Unexpected { .. })
    ));
}

#[test]
fn a_retire_order_decodes_only_on_down_retire() {
    let d = device();
    let order = br#"{"protocol":"1.3","kind":"retireOrder","body":{"reason":"retired"}}"#;
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/retire", order).unwrap(),
        Downlink::Retire(o) if o.reason == "retired"
    ));
    // on another channel, or for another device, it is not an order
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/resync", order),
        Err(RejectReason::Malformed { .. } | RejectReason::Unexpected { .. })
    ));
    assert!(matches!(
        decode(&d, "edge/v1/pi-02/down/retire", order),
        Err(RejectReason::NotForThisDevice { .. })
    ));
}

#[test]
fn agent_update_orders_and_chunks_decode_only_on_down_agent_update() {
    let d = device();
    let order = br#"{"protocol":"1.4","kind":"agentUpdateOrder","body":{"version":"0.2.0","sha256":"ab","sizeBytes":6,"signature":"AAAA","healthDeadlineSeconds":60}}"#;
    match decode(&d, "edge/v1/pi-01/down/agent-update", order).unwrap() {
        Downlink::AgentUpdateOrder(o) => {
            assert_eq!(o.version, "0.2.0");
            assert_eq!(o.size_bytes, 6);
            assert_eq!(o.health_deadline_seconds, 60);
            assert_eq!(o.signature.as_slice(), &[0, 0, 0]);
        }
        other => panic!("{other:?}"),
    }
    let chunk = br#"{"protocol":"1.4","kind":"agentUpdateChunk","body":{"version":"0.2.0","offset":4,"data":"f0VMRg=="}}"#;
    match decode(&d, "edge/v1/pi-01/down/agent-update", chunk).unwrap() {
        Downlink::AgentUpdateChunk(c) => {
            assert_eq!(c.offset, 4);
            assert_eq!(c.data.as_slice(), b"\x7fELF");
            assert_eq!(c.error, None);
        }
        other => panic!("{other:?}"),
    }
    // not on another channel, not for another device, not what the device itself sends
    assert!(decode(&d, "edge/v1/pi-01/down/resync", order).is_err());
    assert!(matches!(
        decode(&d, "edge/v1/pi-02/down/agent-update", chunk),
        Err(RejectReason::NotForThisDevice { .. })
    ));
    let fetch = br#"{"protocol":"1.4","kind":"agentUpdateFetch","body":{"version":"0.2.0","offset":0,"length":4}}"#;
    assert!(decode(&d, "edge/v1/pi-01/down/agent-update", fetch).is_err());
    let bad =
        br#"{"protocol":"1.4","kind":"agentUpdateChunk","body":{"version":"0.2.0","offset":"x"}}"#;
    assert!(matches!(
        decode(&d, "edge/v1/pi-01/down/agent-update", bad),
        Err(RejectReason::Malformed { .. })
    ));
}

#[test]
fn prepull_sets_decode_only_on_down_prepull() {
    let d = device();
    let set = br#"{"protocol":"1.5","kind":"imagePrepullSet","body":{"revision":"r7","images":["reg:5000/app:1"],"registryCredentials":[{"registry":"reg:5000","username":"u","password":"p"}]}}"#;
    match decode(&d, "edge/v1/pi-01/down/prepull", set).unwrap() {
        Downlink::Prepull(s) => {
            assert_eq!(s.revision, "r7");
            assert_eq!(s.images, vec!["reg:5000/app:1".to_owned()]);
            assert_eq!(s.registry_credentials[0].password, "p");
        }
        other => panic!("{other:?}"),
    }
    assert!(decode(&d, "edge/v1/pi-01/down/desired", set).is_err());
    assert!(matches!(
        decode(&d, "edge/v1/pi-02/down/prepull", set),
        Err(RejectReason::NotForThisDevice { .. })
    ));
    let status =
        br#"{"protocol":"1.5","kind":"imagePrepullStatus","body":{"revision":"r7","images":[]}}"#;
    assert!(decode(&d, "edge/v1/pi-01/down/prepull", status).is_err());
}
