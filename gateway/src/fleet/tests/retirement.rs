//! Retirement decided by the state machine alone: the Node, Lease and pods deleted, the
//! store purged, the device told to wipe itself (now if online, else when it talks
//! again, rate limited), a failed deletion tried again, a returning device refused.

use std::time::Duration;

use super::*;
use crate::device_sync::PersistedDevice;
use crate::fleet::retirement::{RETIRE_CLEANUP_RETRY, RETIRE_ORDER_INTERVAL};
use crate::hostile_input::RejectReason;
use crate::mqtt_link::{DeviceFrame, DeviceMessage};

fn state_with(stored: &[&str]) -> FleetState {
    FleetState::restore(
        FleetSettings::local(std::path::Path::new("/nonexistent")),
        stored
            .iter()
            .map(|d| (id(d), PersistedDevice::default()))
            .collect::<Vec<_>>(),
        Default::default(),
    )
}

fn from(device: &str, message: DeviceMessage, revocation: Revocation) -> FleetInput {
    FleetInput::Device {
        frame: DeviceFrame {
            device: id(device),
            message,
        },
        revocation,
    }
}

fn hello(device: &str, revocation: Revocation) -> FleetInput {
    from(device, DeviceMessage::Hello(Box::default()), revocation)
}

/// A tick with no device newly revoked.
fn idle_tick(s: &mut FleetState, at: Now) -> Effects {
    s.handle(
        FleetInput::Tick {
            revoked: Vec::new(),
        },
        at,
    )
}

fn later(now: Now, by: Duration) -> Now {
    Now {
        at: now.at + by,
        wall: now.wall,
    }
}

fn orders(effects: &Effects, device: &str) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, FleetEffect::Mqtt(Outgoing::Retire { device: d, .. }) if d.as_str() == device))
        .count()
}

fn node_deletions(effects: &Effects, device: &str) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, FleetEffect::Kube(KubeOp::RetireNode { device: d, .. }) if d.as_str() == device))
        .count()
}

fn metric(effects: &Effects, event: &str) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, FleetEffect::Metric(MetricUpdate::Retirement(x)) if *x == event))
}

#[test]
fn an_online_device_retired_loses_node_lease_pods_and_store_and_is_told_at_once() {
    let mut s = state_with(&[]);
    let now = Now::current();
    s.handle(hello("ret-1", Revocation::NotRevoked), now);
    let effects = s.handle(
        FleetInput::Tick {
            revoked: vec![id("ret-1")],
        },
        now,
    );
    assert_eq!(node_deletions(&effects, "ret-1"), 1, "{effects:?}");
    assert_eq!(orders(&effects, "ret-1"), 1, "{effects:?}");
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, FleetEffect::ForgetStored { device, retired: true } if device.as_str() == "ret-1")),
        "{effects:?}"
    );
    assert!(
        effects.iter().any(
            |e| matches!(e, FleetEffect::RetainLogTails { device, present }
            if device.as_str() == "ret-1" && present.is_empty())
        ),
        "its cached log tails are purged too: {effects:?}"
    );
    assert!(metric(&effects, "retired") && metric(&effects, "order_sent"));
    assert!(!s.knows(&id("ret-1")));
    // the next tick does nothing more about it
    let again = idle_tick(&mut s, now);
    assert_eq!(node_deletions(&again, "ret-1") + orders(&again, "ret-1"), 0);
}

#[test]
fn an_offline_device_is_told_when_it_comes_back_and_refused() {
    let mut s = state_with(&["ret-2"]);
    let now = Now::current();
    let retired = s.handle(
        FleetInput::Tick {
            revoked: vec![id("ret-2")],
        },
        now,
    );
    assert_eq!(node_deletions(&retired, "ret-2"), 1, "{retired:?}");
    assert_eq!(
        orders(&retired, "ret-2"),
        0,
        "an offline device cannot be told yet"
    );

    let back = s.handle(
        hello("ret-2", Revocation::Revoked),
        later(now, Duration::from_secs(1)),
    );
    assert!(
        matches!(&back[0], FleetEffect::Reject(r) if r.reason == RejectReason::NotAdmitted),
        "{back:?}"
    );
    assert_eq!(orders(&back, "ret-2"), 1, "{back:?}");
    assert!(metric(&back, "refused"), "{back:?}");
    // nothing else: no Node, no store write, no resync
    assert!(
        !back.iter().any(|e| matches!(
            e,
            FleetEffect::Kube(KubeOp::UpsertNode { .. })
                | FleetEffect::StoreReport { .. }
                | FleetEffect::Mqtt(Outgoing::StatusResync { .. } | Outgoing::Desired { .. })
        )),
        "{back:?}"
    );
    assert!(!s.knows(&id("ret-2")));

    // more messages within the interval: no second order; after it: sent again
    let soon = s.handle(
        from(
            "ret-2",
            DeviceMessage::Heartbeat(Heartbeat::default()),
            Revocation::Revoked,
        ),
        later(now, Duration::from_secs(2)),
    );
    assert_eq!(orders(&soon, "ret-2"), 0, "{soon:?}");
    let after = s.handle(
        hello("ret-2", Revocation::Revoked),
        later(now, RETIRE_ORDER_INTERVAL + Duration::from_secs(2)),
    );
    assert_eq!(orders(&after, "ret-2"), 1, "{after:?}");
}

#[test]
fn a_device_retired_before_a_gateway_restart_is_still_told() {
    // the fleet never knew it (its store entries were purged already)
    let mut s = state_with(&[]);
    let effects = s.handle(hello("ret-3", Revocation::Revoked), Now::current());
    assert_eq!(orders(&effects, "ret-3"), 1, "{effects:?}");
    assert_eq!(node_deletions(&effects, "ret-3"), 0, "{effects:?}");
}

#[test]
fn a_failed_deletion_of_the_node_lease_or_pods_is_tried_again() {
    let mut s = state_with(&["ret-4"]);
    let now = Now::current();
    s.handle(
        FleetInput::Tick {
            revoked: vec![id("ret-4")],
        },
        now,
    );
    // under way: not sent again
    let waiting = idle_tick(&mut s, later(now, RETIRE_CLEANUP_RETRY * 2));
    assert_eq!(node_deletions(&waiting, "ret-4"), 0);

    s.handle(
        FleetInput::Kube(KubeFeedback::RetireFailed {
            device: id("ret-4"),
        }),
        now,
    );
    let early = idle_tick(&mut s, later(now, Duration::from_secs(1)));
    assert_eq!(node_deletions(&early, "ret-4"), 0, "{early:?}");
    let due = idle_tick(&mut s, later(now, RETIRE_CLEANUP_RETRY));
    assert_eq!(node_deletions(&due, "ret-4"), 1, "{due:?}");

    s.handle(
        FleetInput::Kube(KubeFeedback::NodeRetired {
            device: id("ret-4"),
        }),
        now,
    );
    let done = idle_tick(&mut s, later(now, RETIRE_CLEANUP_RETRY * 3));
    assert_eq!(node_deletions(&done, "ret-4"), 0, "{done:?}");
}

/// The Node's `DeviceRetired` Event message of a retirement.
fn node_event_message(effects: &Effects) -> String {
    effects
        .iter()
        .find_map(|e| match e {
            FleetEffect::Kube(KubeOp::RecordEvent { event, .. })
                if event.reason.as_deref() == Some("DeviceRetired") =>
            {
                event.message.clone()
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// The Node Event of a device that said hello with `report` and was then retired.
fn retired_event(report: NodeReport, device: &str) -> String {
    let mut s = state_with(&[]);
    let now = Now::current();
    let hello = DeviceMessage::Hello(Box::new(report));
    s.handle(from(device, hello, Revocation::NotRevoked), now);
    let tick = FleetInput::Tick {
        revoked: vec![id(device)],
    };
    node_event_message(&s.handle(tick, now))
}

#[test]
fn an_agent_that_cannot_obey_the_order_is_named_in_the_event() {
    let old_agent = NodeReport {
        agent_version: "0.9.0".into(),
        ..Default::default()
    };
    let message = retired_event(old_agent, "ret-5");
    assert!(
        message.contains("its agent (0.9.0) does not obey retire orders"),
        "{message:?}"
    );

    let mut current = NodeReport::default();
    current.capabilities.retire = true;
    let message = retired_event(current, "ret-6");
    assert!(
        message.contains("no longer serves device ret-6"),
        "{message:?}"
    );
    assert!(!message.contains("by hand"), "{message:?}");
}
