use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use edge_protocol::DeviceId;

use super::{ShardGate, device_filters, discovery_filters};

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).expect("valid id")
}

#[test]
fn unsharded_everything_is_ours_and_one_filter_covers_all() {
    let gate = ShardGate::unsharded();
    assert!(!gate.is_sharded());
    assert!(gate.may_write(&id("pi-1")));
    assert!(gate.owns(&id("pi-1")));
    assert_eq!(gate.write_deadline(), None);
    assert_eq!(gate.subscriptions(), vec!["edge/v1/+/up/#".to_owned()]);
}

#[test]
fn a_replica_writes_only_its_own_devices_and_only_before_its_deadline() {
    let (gate, _heard) = ShardGate::sharded();
    let now = Instant::now();
    assert!(
        !gate.may_write_at(&id("pi-1"), now),
        "nothing before the first decision"
    );
    assert!(!gate.owns(&id("pi-1")));
    let owned: BTreeSet<DeviceId> = [id("pi-1")].into();
    gate.publish(Some(now + Duration::from_secs(10)), &owned);
    assert!(gate.may_write_at(&id("pi-1"), now));
    assert!(gate.may_write_at(&id("pi-1"), now + Duration::from_millis(9_999)));
    assert!(!gate.may_write_at(&id("pi-1"), now + Duration::from_secs(10)));
    assert!(!gate.may_write_at(&id("pi-2"), now), "not ours");
    assert!(gate.owns(&id("pi-1")));
    assert!(!gate.owns(&id("pi-2")));
    assert_eq!(gate.write_deadline(), Some(now + Duration::from_secs(10)));
    // fenced: no deadline means no writes
    gate.publish(None, &owned);
    assert!(!gate.may_write_at(&id("pi-1"), now));
}

#[test]
fn a_replica_subscribes_to_hello_and_state_of_all_and_the_rest_of_its_own() {
    let (gate, _heard) = ShardGate::sharded();
    assert_eq!(gate.subscriptions(), discovery_filters());
    assert_eq!(
        discovery_filters(),
        vec![
            "edge/v1/+/up/hello".to_owned(),
            "edge/v1/+/up/state".to_owned()
        ]
    );
    let owned: BTreeSet<DeviceId> = [id("pi-1")].into();
    gate.publish(Some(Instant::now()), &owned);
    let subs = gate.subscriptions();
    assert_eq!(subs.len(), 2 + device_filters(&id("pi-1")).len());
    let own = device_filters(&id("pi-1"));
    for f in [
        "edge/v1/pi-1/up/heartbeat",
        "edge/v1/pi-1/up/status",
        "edge/v1/pi-1/up/events",
        "edge/v1/pi-1/up/resync",
        "edge/v1/pi-1/up/stats",
        "edge/v1/pi-1/up/logtail",
        "edge/v1/pi-1/up/logs/+",
        "edge/v1/pi-1/up/stream/+",
    ] {
        assert!(own.contains(&f.to_owned()), "{f}");
    }
    // hello and state come through the discovery filters only, never twice
    assert!(
        !own.iter()
            .any(|f| f.ends_with("/hello") || f.ends_with("/state"))
    );
    // every up channel a device uses is covered
    for channel in [
        "hello",
        "heartbeat",
        "state",
        "status",
        "events",
        "resync",
        "stats",
        "logtail",
    ] {
        let topic = format!("edge/v1/pi-1/up/{channel}");
        assert!(
            subs.iter().any(|f| matches(f, &topic)),
            "{topic} not subscribed"
        );
    }
    assert!(subs.iter().any(|f| matches(f, "edge/v1/pi-1/up/logs/r1")));
    assert!(subs.iter().any(|f| matches(f, "edge/v1/pi-1/up/stream/s1")));
    assert!(!subs.iter().any(|f| matches(f, "edge/v1/pi-2/up/status")));
}

/// MQTT filter matching with `+` (one level) and `#` (the rest).
fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[test]
fn devices_heard_reach_the_runner() {
    let (gate, mut heard) = ShardGate::sharded();
    gate.heard(&id("pi-1"));
    assert_eq!(heard.try_recv().ok(), Some(id("pi-1")));
    // unsharded: nobody listens, nothing breaks
    ShardGate::unsharded().heard(&id("pi-1"));
}
