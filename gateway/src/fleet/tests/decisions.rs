//! The state machine alone: inputs to [`FleetState::handle`], effects asserted, no
//! runtime, no store, no channels.

use super::*;
use crate::hostile_input::RejectReason;
use crate::mqtt_link::{DeviceFrame, DeviceMessage};

fn state() -> FleetState {
    FleetState::restore(
        FleetSettings::local(std::path::Path::new("/nonexistent")),
        Vec::new(),
        Default::default(),
    )
}

fn message(device: &str, message: DeviceMessage, revocation: Revocation) -> FleetInput {
    FleetInput::Device {
        frame: DeviceFrame {
            device: id(device),
            message,
        },
        revocation,
    }
}

fn hello_from(device: &str, revocation: Revocation) -> FleetInput {
    message(device, DeviceMessage::Hello(Box::default()), revocation)
}

fn hello(device: &str) -> FleetInput {
    hello_from(device, Revocation::NotRevoked)
}

fn heartbeat(device: &str, revocation: Revocation) -> FleetInput {
    message(
        device,
        DeviceMessage::Heartbeat(Heartbeat::default()),
        revocation,
    )
}

fn node_registered(device: &str) -> FleetInput {
    FleetInput::Kube(KubeFeedback::NodeRegistered {
        device: id(device),
        uid: Some(format!("uid-{device}")),
    })
}

fn position(effects: &Effects, what: impl Fn(&FleetEffect) -> bool) -> Option<usize> {
    effects.iter().position(what)
}

#[test]
fn a_hello_stores_the_report_claims_the_node_and_asks_for_statuses() {
    let mut s = state();
    let effects = s.handle(hello("pi-01"), Now::current());
    let stored = position(&effects, |e| matches!(e, FleetEffect::StoreReport { .. }));
    let upsert = position(
        &effects,
        |e| matches!(e, FleetEffect::Kube(KubeOp::UpsertNode { device, .. }) if device.as_str() == "pi-01"),
    );
    let resync = position(
        &effects,
        |e| matches!(e, FleetEffect::Mqtt(Outgoing::StatusResync { reason, .. }) if reason == "gateway start"),
    );
    assert!(
        stored < upsert && upsert < resync && stored.is_some(),
        "{effects:?}"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, FleetEffect::Metric(MetricUpdate::DeviceOnline))),
        "{effects:?}"
    );
    assert!(s.is_online(&id("pi-01")));
    assert!(!s.is_owned(&id("pi-01")), "not ours before the Node is");
}

#[test]
fn pods_are_adopted_once_the_node_is_registered_and_only_once() {
    let mut s = state();
    s.handle(hello("pi-01"), Now::current());
    let effects = s.handle(node_registered("pi-01"), Now::current());
    assert!(
        matches!(&effects[..], [FleetEffect::AdoptPods(d), ..] if d.as_str() == "pi-01"),
        "{effects:?}"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, FleetEffect::Kube(KubeOp::RenewLease { .. }))),
        "the lease is renewed at once: {effects:?}"
    );
    let again = s.handle(node_registered("pi-01"), Now::current());
    assert!(
        !again.iter().any(|e| matches!(e, FleetEffect::AdoptPods(_))),
        "{again:?}"
    );
}

#[test]
fn an_unknown_device_is_counted_and_asked_to_introduce_itself_once() {
    let mut s = state();
    let now = Now::current();
    let first = s.handle(heartbeat("pi-09", Revocation::NotRevoked), now);
    assert!(
        matches!(
            &first[..],
            [
                FleetEffect::CountRejected(RejectReason::UnknownDevice),
                FleetEffect::Mqtt(Outgoing::StatusResync { .. }),
            ]
        ),
        "{first:?}"
    );
    let second = s.handle(heartbeat("pi-09", Revocation::NotRevoked), now);
    assert!(
        matches!(
            &second[..],
            [FleetEffect::CountRejected(RejectReason::UnknownDevice)]
        ),
        "{second:?}"
    );
    // a device that may not join is counted, never asked
    let revoked = s.handle(
        heartbeat("pi-10", Revocation::Unreadable("broken".into())),
        now,
    );
    assert!(
        matches!(
            &revoked[..],
            [FleetEffect::CountRejected(RejectReason::UnknownDevice)]
        ),
        "{revoked:?}"
    );
}

#[test]
fn a_message_from_a_revoked_device_retires_it() {
    let mut s = state();
    s.handle(hello("pi-01"), Now::current());
    let effects = s.handle(heartbeat("pi-01", Revocation::Revoked), Now::current());
    assert!(
        matches!(&effects[0], FleetEffect::Reject(r) if r.reason == RejectReason::Revoked),
        "{effects:?}"
    );
    for expected in [
        |e: &FleetEffect| matches!(e, FleetEffect::ForgetStored { retired: true, .. }),
        |e: &FleetEffect| {
            matches!(
                e,
                FleetEffect::EndLogStreams {
                    tell_device: false,
                    ..
                }
            )
        },
        |e: &FleetEffect| matches!(e, FleetEffect::Metric(MetricUpdate::DeviceOffline)),
        |e: &FleetEffect| {
            matches!(e, FleetEffect::Kube(KubeOp::RecordEvent { event, .. })
                if event.reason.as_deref() == Some("DeviceRetired"))
        },
    ] {
        assert!(effects.iter().any(expected), "{effects:?}");
    }
    assert!(!s.knows(&id("pi-01")));
    // a hello of a revoked device is not admitted (and counted as a retired device
    // that came back; its order went out with the retirement above, moments ago)
    let effects = s.handle(hello_from("pi-01", Revocation::Revoked), Now::current());
    assert!(
        matches!(&effects[..], [FleetEffect::Reject(r), FleetEffect::Metric(MetricUpdate::Retirement("refused"))]
            if r.reason == RejectReason::NotAdmitted && r.detail == "device is revoked"),
        "{effects:?}"
    );
}

#[test]
fn a_desired_set_is_stored_before_it_is_published() {
    let mut s = state();
    let dev = id("pi-01");
    s.handle(hello("pi-01"), Now::current());
    s.handle(node_registered("pi-01"), Now::current());
    s.handle(
        FleetInput::PodsSynced {
            device: dev.clone(),
            present: BTreeSet::new(),
        },
        Now::current(),
    );
    let p = pod("web", "u1", "pi-01");
    let result = translate_pod(&p, &PodReferences::default(), &s.node_context(&dev));
    let effects = s.handle(
        FleetInput::PodTranslated {
            device: dev.clone(),
            pod: p,
            result,
        },
        Now::current(),
    );
    let stored = position(
        &effects,
        |e| matches!(e, FleetEffect::StoreDesired { record, retry: false, .. } if record.desired.pods.len() == 1),
    );
    let published = position(
        &effects,
        |e| matches!(e, FleetEffect::Mqtt(Outgoing::Desired { set, .. }) if set.pods.len() == 1),
    );
    assert!(
        stored.is_some() && stored < published,
        "store write first: {effects:?}"
    );
    // a held-back set is written again by the next tick, marked as a retry
    s.handle(
        FleetInput::DesiredSetNotStored {
            device: dev.clone(),
        },
        Now::current(),
    );
    assert!(s.is_held_back(&dev));
    let effects = s.handle(
        FleetInput::Tick {
            revoked: Vec::new(),
        },
        Now::current(),
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, FleetEffect::StoreDesired { retry: true, .. })),
        "{effects:?}"
    );
    assert!(!s.is_held_back(&dev));
}

#[test]
fn a_device_going_offline_ends_its_log_streams_and_tells_it() {
    let mut s = state();
    s.handle(hello("pi-01"), Now::current());
    let effects = s.handle(
        message(
            "pi-01",
            DeviceMessage::State {
                state: DeviceState {
                    online: false,
                    reason: None,
                    since: 0,
                },
                retained: false,
            },
            Revocation::NotRevoked,
        ),
        Now::current(),
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            FleetEffect::EndLogStreams {
                tell_device: true,
                ..
            }
        )),
        "{effects:?}"
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            FleetEffect::EndDeviceStreams { device, reason }
                if device.as_str() == "pi-01" && reason == "node pi-01 went offline"
        )),
        "{effects:?}"
    );
    assert!(!s.is_online(&id("pi-01")));
}

#[test]
fn a_new_agent_session_ends_the_old_sessions_streams() {
    let mut s = state();
    s.handle(hello("pi-01"), Now::current());
    let effects = s.handle(hello("pi-01"), Now::current());
    assert!(
        effects.iter().any(|e| matches!(
            e,
            FleetEffect::EndDeviceStreams { device, reason }
                if device.as_str() == "pi-01" && reason.contains("restarted")
        )),
        "{effects:?}"
    );
}

#[test]
fn stream_messages_are_routed_to_their_stream_in_order() {
    use crate::device_streams::DeviceStreamMessage;
    let mut s = state();
    s.handle(hello("pi-01"), Now::current());
    let stream = edge_protocol::RequestId::new("s1").unwrap();
    let effects = s.handle(
        message(
            "pi-01",
            DeviceMessage::Stream {
                stream: stream.clone(),
                message: DeviceStreamMessage::Close(Default::default()),
            },
            Revocation::NotRevoked,
        ),
        Now::current(),
    );
    assert!(
        matches!(
            effects.as_slice(),
            [FleetEffect::DeliverStreamMessage { device, id, message: DeviceStreamMessage::Close(_) }]
                if device.as_str() == "pi-01" && *id == stream
        ),
        "{effects:?}"
    );
}
