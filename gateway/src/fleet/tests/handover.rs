//! Sharded gateways: a device handed away is forgotten without a word to Kubernetes or
//! the device; one handed to this replica is asked for its report; messages of devices
//! that are not this replica's are dropped (their hello and state reported to the
//! shard runner).

use std::collections::BTreeSet;
use std::time::Instant;

use super::*;
use crate::sharding::ShardGate;

fn hello(h: &Harness, device: &str) {
    send(&h.fleet, device, UpChannel::Hello, NodeReport::default());
}

fn resyncs(out: &[Outgoing], device: &str) -> usize {
    out.iter()
        .filter(|o| matches!(o, Outgoing::StatusResync { device: d, .. } if d.as_str() == device))
        .count()
}

#[test]
fn a_device_handed_away_is_forgotten_without_any_write_or_message() {
    let mut h = harness();
    hello(&h, "sh-1");
    registered(&h, "sh-1");
    assert!(h.fleet.is_known("sh-1"));
    assert!(h.fleet.store().load_reports().contains_key(&id("sh-1")));
    drain(&mut h.ops);
    drain(&mut h.outbox);
    h.fleet.fleet.on_handover(&id("sh-1"), false);
    h.fleet.settle();
    assert!(!h.fleet.is_known("sh-1"));
    let ops = drain(&mut h.ops);
    assert!(ops.is_empty(), "no Kubernetes write: {ops:?}");
    assert!(
        drain(&mut h.outbox).is_empty(),
        "nothing sent to the device"
    );
    assert!(
        !h.fleet.store().load_reports().contains_key(&id("sh-1")),
        "its store entries are gone"
    );
    // its Lease is no longer renewed here
    h.fleet.tick();
    assert!(
        !drain(&mut h.ops)
            .iter()
            .any(|op| matches!(op, KubeOp::RenewLease { device, .. } if device.as_str() == "sh-1"))
    );
}

#[test]
fn a_device_handed_to_this_replica_is_asked_for_its_report() {
    let mut h = harness();
    h.fleet.fleet.on_handover(&id("sh-2"), true);
    h.fleet.settle();
    assert_eq!(resyncs(&drain(&mut h.outbox), "sh-2"), 1);
}

#[test]
fn messages_of_devices_that_are_not_ours_are_dropped_and_their_hello_reported() {
    let mut h = harness();
    let (gate, mut heard) = ShardGate::sharded();
    h.fleet.fleet.set_shard_gate(gate.clone());
    hello(&h, "sh-3");
    send(&h.fleet, "sh-3", UpChannel::Heartbeat, Heartbeat::default());
    assert!(!h.fleet.is_known("sh-3"));
    assert!(
        drain(&mut h.outbox).is_empty(),
        "not asked to introduce itself"
    );
    assert!(drain(&mut h.ops).is_empty());
    assert_eq!(
        heard.try_recv().ok(),
        Some(id("sh-3")),
        "its hello was reported"
    );
    assert!(heard.try_recv().is_err(), "a heartbeat is not a sighting");
    // once ours, its hello registers it
    let owned: BTreeSet<DeviceId> = [id("sh-3")].into();
    gate.publish(
        Some(Instant::now() + std::time::Duration::from_secs(10)),
        &owned,
    );
    hello(&h, "sh-3");
    assert!(
        drain(&mut h.ops)
            .iter()
            .any(|op| matches!(op, KubeOp::UpsertNode { device, .. } if device.as_str() == "sh-3"))
    );
    registered(&h, "sh-3");
    assert!(h.fleet.is_known("sh-3"));
}

#[test]
fn messages_of_devices_not_ours_are_not_counted_as_received() {
    let h = harness();
    let counted = "edge_gateway_mqtt_messages_received_total{kind=\"heartbeat\"}";
    send(&h.fleet, "sh-4", UpChannel::Heartbeat, Heartbeat::default());
    assert!(
        h.fleet.metrics().render().contains(counted),
        "unsharded: counted"
    );
    let h = harness();
    let (gate, _heard) = ShardGate::sharded();
    h.fleet.fleet.set_shard_gate(gate);
    send(&h.fleet, "sh-4", UpChannel::Heartbeat, Heartbeat::default());
    let rendered = h.fleet.metrics().render();
    assert!(!rendered.contains(counted), "{rendered}");
}

#[test]
fn a_message_queued_before_its_device_was_handed_away_is_dropped() {
    let mut h = harness();
    let (gate, _heard) = ShardGate::sharded();
    h.fleet.fleet.set_shard_gate(gate);
    // as if the MQTT link accepted it just before the hand-over
    h.fleet
        .fleet
        .on_device_frame(crate::mqtt_link::DeviceFrame {
            device: id("sh-5"),
            message: crate::mqtt_link::DeviceMessage::Hello(Box::default()),
        });
    h.fleet.settle();
    assert!(drain(&mut h.ops).is_empty(), "no Node written for it");
    assert!(drain(&mut h.outbox).is_empty());
}
