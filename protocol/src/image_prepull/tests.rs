use super::*;
use crate::{DecodeError, DeviceId, DownChannel, Message, NodeReport, Topic, UpChannel};

fn device() -> DeviceId {
    DeviceId::new("pi-01").unwrap()
}

#[test]
fn sets_travel_down_and_statuses_up_and_nowhere_else() {
    let up = Topic::up(&device(), UpChannel::Prepull);
    let down = Topic::down(&device(), DownChannel::Prepull);
    assert_eq!(up.to_string(), "edge/v1/pi-01/up/prepull");
    assert_eq!(down.to_string(), "edge/v1/pi-01/down/prepull");
    assert_eq!(Topic::parse(&up.to_string()).unwrap(), up);
    assert_eq!(Topic::parse(&down.to_string()).unwrap(), down);

    let set = Message::from(ImagePrepullSet {
        revision: "3f2a".into(),
        images: vec!["ghcr.io/acme/app:2.1".into()],
        registry_credentials: vec![RegistryCredential {
            registry: "ghcr.io".into(),
            username: "bot".into(),
            password: "s3cret".into(),
        }],
    });
    let payload = set.encode().unwrap();
    assert_eq!(Message::decode_on(&down, &payload).unwrap(), set);
    // a device cannot publish a set (with credentials) as if it came from the gateway
    assert!(matches!(
        Message::decode_on(&up, &payload),
        Err(DecodeError::WrongTopic { .. })
    ));
    let status = Message::from(ImagePrepullStatus {
        revision: "3f2a".into(),
        images: vec![PrepullImageStatus {
            image: "ghcr.io/acme/app:2.1".into(),
            phase: PrepullPhase::Pulling,
            bytes_done: 1_000,
            bytes_total: 4_000,
            message: String::new(),
            since: 1,
        }],
    });
    let payload = status.encode().unwrap();
    assert_eq!(Message::decode_on(&up, &payload).unwrap(), status);
    assert!(matches!(
        Message::decode_on(&down, &payload),
        Err(DecodeError::WrongTopic { .. })
    ));
}

#[test]
fn a_phase_of_a_newer_protocol_keeps_the_node_report_readable() {
    let json = r#"{"protocol":"1.9","kind":"nodeReport","body":{"nodeName":"pi-01",
        "imagePrepull":{"revision":"r1","images":[{"image":"a","phase":"verifying"},
        {"image":"b","phase":"present"}]}}}"#;
    let Message::NodeReport(report) = Message::decode(json.as_bytes()).unwrap() else {
        panic!("not a node report")
    };
    let report: NodeReport = report;
    let prepull = report.image_prepull.unwrap();
    assert_eq!(prepull.images[0].phase, PrepullPhase::Unknown);
    assert_eq!(prepull.images[1].phase, PrepullPhase::Present);
    assert!(!prepull.complete());
}

#[test]
fn a_set_is_complete_when_every_image_is_present() {
    let image = |phase| PrepullImageStatus {
        image: "a".into(),
        phase,
        ..Default::default()
    };
    let mut status = ImagePrepullStatus {
        revision: "r".into(),
        images: vec![image(PrepullPhase::Present), image(PrepullPhase::Failed)],
    };
    assert!(!status.complete());
    status.images[1].phase = PrepullPhase::Present;
    assert!(status.complete());
}
