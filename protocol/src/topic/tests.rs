use super::*;

fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

fn all_topics() -> Vec<Topic> {
    let d = dev("pi-01.lab");
    let r = RequestId::new("req-42").unwrap();
    vec![
        Topic::up(&d, UpChannel::Hello),
        Topic::up(&d, UpChannel::Heartbeat),
        Topic::up(&d, UpChannel::State),
        Topic::up(&d, UpChannel::Status),
        Topic::up(&d, UpChannel::Events),
        Topic::up(&d, UpChannel::Resync),
        Topic::up(&d, UpChannel::Logs(r.clone())),
        Topic::up(&d, UpChannel::Stats),
        Topic::up(&d, UpChannel::LogTail),
        Topic::up(&d, UpChannel::Stream(r.clone())),
        Topic::down(&d, DownChannel::Desired),
        Topic::down(&d, DownChannel::Resync),
        Topic::down(&d, DownChannel::Logs(r.clone())),
        Topic::down(&d, DownChannel::Stream(r)),
    ]
}

#[test]
fn every_topic_round_trips() {
    for t in all_topics() {
        let s = t.to_string();
        assert_eq!(Topic::parse(&s), Ok(t.clone()), "{s}");
    }
}

#[test]
fn formats_as_documented() {
    let d = dev("pi-01");
    assert_eq!(
        Topic::up(&d, UpChannel::Status).to_string(),
        "edge/v1/pi-01/up/status"
    );
    assert_eq!(
        Topic::down(&d, DownChannel::Desired).to_string(),
        "edge/v1/pi-01/down/desired"
    );
    assert_eq!(gateway_subscription(), "edge/v1/+/up/#");
    assert_eq!(device_subscription(&d), "edge/v1/pi-01/down/#");
}

#[test]
fn hostile_device_levels_are_rejected() {
    for t in [
        "edge/v1/+/up/status",
        "edge/v1/#/up/status",
        "edge/v1//up/status",
        "edge/v1/PI/up/status",
        "edge/v1/pï/up/status",
        "edge/v1/-x/up/status",
    ] {
        assert!(
            matches!(Topic::parse(t), Err(TopicError::InvalidDevice { .. })),
            "{t}: {:?}",
            Topic::parse(t)
        );
    }
}

#[test]
fn unknown_shapes_are_rejected() {
    assert!(matches!(
        Topic::parse("other/v1/a/up/status"),
        Err(TopicError::NotOurs { .. })
    ));
    assert!(matches!(
        Topic::parse("edge/v2/a/up/status"),
        Err(TopicError::UnsupportedVersion { .. })
    ));
    for t in [
        "edge/v1/a/up/unknown",
        "edge/v1/a/sideways/status",
        "edge/v1/a/up/status/extra",
        "edge/v1/a/up/logs",
        "edge/v1/a",
        "edge/v1/a/up",
    ] {
        assert!(
            matches!(Topic::parse(t), Err(TopicError::UnknownChannel { .. })),
            "{t}: {:?}",
            Topic::parse(t)
        );
    }
    assert!(matches!(
        Topic::parse("edge/v1/a/up/logs/+"),
        Err(TopicError::InvalidRequest { .. })
    ));
    assert!(matches!(Topic::parse(""), Err(TopicError::NotOurs { .. })));
}

#[test]
fn qos_and_retain_follow_the_table() {
    let d = dev("a");
    assert_eq!(Topic::up(&d, UpChannel::Heartbeat).qos(), Qos::AtMostOnce);
    assert_eq!(Topic::up(&d, UpChannel::Status).qos(), Qos::AtLeastOnce);
    assert!(Topic::up(&d, UpChannel::State).retained());
    assert!(!Topic::down(&d, DownChannel::Desired).retained());
    assert_eq!(
        Topic::down(&d, DownChannel::Desired).qos(),
        Qos::AtLeastOnce
    );
}

#[test]
fn acl_patterns_cover_exactly_own_channels() {
    let [w, r] = device_acl_patterns();
    assert_eq!(w, "pattern write edge/v1/%u/up/#");
    assert_eq!(r, "pattern read edge/v1/%u/down/#");
}
