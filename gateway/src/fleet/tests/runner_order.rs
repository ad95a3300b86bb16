//! The runner's execution of effects: a desired set is in the store when it is queued
//! for the outbox, and held-back sets of several devices all go out once the store
//! works again.

use super::*;

#[test]
fn a_published_set_is_already_in_the_store() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    bind(&h, "pi-01", "web", "u1");
    let sets = publishes(&drain(&mut h.outbox), "pi-01");
    let set = sets.last().expect("a set was published");
    let stored: Vec<_> = h
        .fleet
        .store()
        .load_devices()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        stored
            .iter()
            .any(|(d, r)| d.as_str() == "pi-01" && r.desired == *set),
        "{stored:?}"
    );
}

#[test]
fn held_back_sets_of_every_device_go_out_once_the_store_works() {
    let mut h = harness();
    for device in ["pi-01", "pi-02"] {
        send(&h.fleet, device, UpChannel::Hello, NodeReport::default());
        registered(&h, device);
        h.fleet.on_pods_synced(&id(device), BTreeSet::new());
    }
    drain(&mut h.outbox);
    h.fleet.store().inject_write_failures(true);
    for (device, uid) in [("pi-01", "u1"), ("pi-02", "u2")] {
        let id = id(device);
        let p = pod(uid, uid, device);
        let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&id));
        h.fleet.on_pod_translated(&id, p, t);
    }
    h.fleet.tick();
    let out = drain(&mut h.outbox);
    assert!(publishes(&out, "pi-01").is_empty() && publishes(&out, "pi-02").is_empty());
    h.fleet.store().inject_write_failures(false);
    h.fleet.tick();
    let out = drain(&mut h.outbox);
    assert_eq!(publishes(&out, "pi-01").len(), 1, "{out:?}");
    assert_eq!(publishes(&out, "pi-02").len(), 1, "{out:?}");
}

/// The MQTT link's intake is bounded: while `DEVICE_FRAME_INTAKE` frames wait for the
/// runner, the next one waits too (the link stops reading the broker), and goes in as
/// soon as the runner has handled the queue.
/// (Polled outside a tokio runtime: its co-operative budget would make a poll return
/// Pending for reasons of its own.)
#[test]
fn device_frames_wait_while_the_intake_is_full() {
    use futures::FutureExt as _;
    let h = harness();
    let device = id("pi-01");
    let topic = Topic::up(&device, UpChannel::Hello).to_string();
    let payload = Message::from(NodeReport::default()).encode().unwrap();
    let frame = crate::mqtt_link::decode(&topic, &payload, false).unwrap();
    let fleet = &h.fleet.fleet;
    for _ in 0..crate::fleet::DEVICE_FRAME_INTAKE {
        assert!(
            fleet
                .queue_device_frame(frame.clone())
                .now_or_never()
                .is_some(),
            "the intake was full early"
        );
    }
    assert_eq!(fleet.device_frame_intake_free(), 0);
    let mut waiting = Box::pin(fleet.queue_device_frame(frame.clone()));
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "a frame went in while the intake was full"
    );
    // The runner handles the queue; the places it frees go first to the waiting frame.
    h.fleet.runner.borrow_mut().run_queued();
    assert!(
        waiting.now_or_never().is_some(),
        "the waiting frame did not go in once the runner caught up"
    );
    assert_eq!(
        fleet.device_frame_intake_free(),
        crate::fleet::DEVICE_FRAME_INTAKE - 1
    );
    h.fleet.runner.borrow_mut().run_queued();
    assert_eq!(
        fleet.device_frame_intake_free(),
        crate::fleet::DEVICE_FRAME_INTAKE
    );
    registered(&h, "pi-01");
}
