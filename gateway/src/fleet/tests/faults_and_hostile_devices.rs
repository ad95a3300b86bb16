//! Hostile devices (a Node takeover, a revoked device, faked capacity) and faults (a
//! failing store, a desired set over the size limit, a device dropping with open log
//! streams): each test fails on a fleet without the corresponding defence.

use super::*;
use edge_protocol::{DesiredSet, LogRequest, NodeResources};

fn rejected(h: &Harness, reason: &str) -> bool {
    h.fleet
        .metrics()
        .render()
        .contains(&format!("reason=\"{reason}\""))
}

#[test]
fn pods_are_adopted_only_once_the_node_is_confirmed_ours() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    assert!(
        !h.fleet.is_known("pi-01"),
        "unconfirmed: its pods are not ours yet"
    );
    assert!(drain(&mut h.watch).is_empty());
    registered(&h, "pi-01");
    assert!(h.fleet.is_known("pi-01"));
    let adopted = drain(&mut h.watch);
    assert!(
        matches!(&adopted[..], [PodWatchRequest::AdoptNode(d)] if d.as_str() == "pi-01"),
        "{adopted:?}"
    );
    registered(&h, "pi-01");
    assert!(drain(&mut h.watch).is_empty(), "adopted once");
}

#[test]
fn a_device_named_like_a_foreign_node_gets_nothing() {
    let mut h = harness();
    send(
        &h.fleet,
        "worker-1",
        UpChannel::Hello,
        NodeReport::default(),
    );
    assert!(matches!(
        &drain(&mut h.ops)[..],
        [KubeOp::UpsertNode { .. }]
    ));
    h.fleet.on_feedback(KubeFeedback::NodeRefused {
        device: id("worker-1"),
        why: "the Node exists and was not created by edge-gateway".into(),
    });
    assert!(
        !h.fleet.is_known("worker-1"),
        "the real node's pods stay with it"
    );
    assert!(drain(&mut h.watch).is_empty(), "its pods are never adopted");
    assert!(rejected(&h, "node_not_owned"));
    // hellos within the recheck window do not even reach the API server
    send(
        &h.fleet,
        "worker-1",
        UpChannel::Hello,
        NodeReport::default(),
    );
    h.fleet.tick();
    let ops = drain(&mut h.ops);
    assert!(
        !ops.iter().any(|o| matches!(
            o,
            KubeOp::UpsertNode { .. } | KubeOp::PatchNodeStatus { .. } | KubeOp::RenewLease { .. }
        )),
        "{ops:?}"
    );
    assert!(publishes(&drain(&mut h.outbox), "worker-1").is_empty());
}

#[test]
fn a_restored_device_whose_node_is_foreign_loses_its_pods() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    bind(&h, "pi-01", "web", "u1");
    assert!(h.fleet.log_target("default", "web", "app").is_ok());
    h.fleet.on_feedback(KubeFeedback::NodeRefused {
        device: id("pi-01"),
        why: "replaced".into(),
    });
    assert!(h.fleet.pods().is_empty());
    assert!(h.fleet.desired_set(&id("pi-01")).unwrap().pods.is_empty());
    drain(&mut h.outbox);
    h.fleet.tick();
    assert!(publishes(&drain(&mut h.outbox), "pi-01").is_empty());
}

fn revoke(h: &Harness, device: &str) {
    let dir = h._dir.path().join("enrollment");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("revoked.txt"), format!("{device}\n")).unwrap();
}

#[test]
fn a_revoked_device_is_forgotten_at_its_next_message() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    bind(&h, "pi-01", "web", "u1");
    drain(&mut h.outbox);
    revoke(&h, "pi-01");
    send(
        &h.fleet,
        "pi-01",
        UpChannel::Heartbeat,
        Heartbeat {
            sequence: 1,
            ..Default::default()
        },
    );
    assert!(h.fleet.desired_set(&id("pi-01")).is_none(), "entry dropped");
    assert!(h.fleet.pods().is_empty());
    assert!(rejected(&h, "revoked"));
    // a new pod for its node goes nowhere
    let p = pod("web2", "u2", "pi-01");
    let t = translate_pod(
        &p,
        &PodReferences::default(),
        &h.fleet.node_context(&id("pi-01")),
    );
    h.fleet.on_pod_translated(&id("pi-01"), p, t);
    assert!(publishes(&drain(&mut h.outbox), "pi-01").is_empty());
}

#[test]
fn a_device_revoked_while_silent_is_forgotten_at_the_next_tick() {
    let h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    revoke(&h, "pi-01");
    h.fleet.tick();
    assert!(h.fleet.desired_set(&id("pi-01")).is_none());
    assert!(!h.fleet.is_known("pi-01"));
}

#[test]
fn capacity_cannot_override_standard_resources_or_overflow() {
    let mut h = harness();
    let mut report = NodeReport::default();
    report.capacity = NodeResources {
        cpu_millis: 4000,
        pods: 10,
        extended: [
            ("cpu".to_owned(), 1_000_000),
            ("nvidia.com/gpu".to_owned(), 1),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    report.allocatable = report.capacity.clone();
    send(&h.fleet, "pi-01", UpChannel::Hello, report.clone());
    let ops = drain(&mut h.ops);
    let Some(KubeOp::UpsertNode { report: sent, .. }) = ops.first() else {
        panic!("{ops:?}");
    };
    assert_eq!(
        sent.capacity.extended.keys().collect::<Vec<_>>(),
        vec!["nvidia.com/gpu"]
    );
    assert!(rejected(&h, "bad_resource"));

    report.capacity.memory_bytes = u64::MAX;
    send(&h.fleet, "pi-02", UpChannel::Hello, report);
    assert!(
        drain(&mut h.ops).is_empty(),
        "a report beyond int64 never reaches the Node"
    );
    assert!(rejected(&h, "bad_capacity"));
}

#[test]
fn a_failing_store_holds_back_desired_sets_and_fails_readiness() {
    let mut h = harness();
    h.fleet.health().set_mqtt_connected(true);
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    bind(&h, "pi-01", "web", "u1");
    assert_eq!(publishes(&drain(&mut h.outbox), "pi-01").len(), 1);

    h.fleet.store().inject_write_failures(true);
    let p = pod("web2", "u2", "pi-01");
    let t = translate_pod(
        &p,
        &PodReferences::default(),
        &h.fleet.node_context(&id("pi-01")),
    );
    h.fleet.on_pod_translated(&id("pi-01"), p, t);
    assert!(
        publishes(&drain(&mut h.outbox), "pi-01").is_empty(),
        "a set that is not stored is not promised"
    );
    assert!(!h.fleet.health().problems().is_empty());
    h.fleet.tick();
    assert!(publishes(&drain(&mut h.outbox), "pi-01").is_empty());

    h.fleet.store().inject_write_failures(false);
    h.fleet.tick();
    let sets = publishes(&drain(&mut h.outbox), "pi-01");
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].pods.len(), 2);
}

fn pod_with_env(name: &str, uid: &str, node: &str, bytes: usize) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox",
                "env": [{"name": "BLOB", "value": "x".repeat(bytes)}]}]}
        }))
        .unwrap(),
    )
}

#[test]
fn a_pod_over_the_set_size_limit_is_rejected_and_the_rest_flows() {
    let mut h = harness();
    let dev = id("pi-01");
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    h.fleet.on_pods_synced(&dev, BTreeSet::new());
    let third = edge_protocol::MAX_DESIRED_SET_BYTES / 3;
    for (name, uid) in [("a", "u1"), ("b", "u2"), ("c", "u3")] {
        let p = pod_with_env(name, uid, "pi-01", third);
        let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&dev));
        h.fleet.on_pod_translated(&dev, p, t);
    }
    let sets = publishes(&drain(&mut h.outbox), "pi-01");
    assert!(sets.iter().all(|s| !s.pods.iter().any(|p| p.uid == "u3")));
    let ops = drain(&mut h.ops);
    assert!(
        ops.iter()
            .any(|o| matches!(o, KubeOp::PatchPodStatus { uid, status, .. }
            if uid == "u3" && status.phase.as_deref() == Some("Failed")
                && status.reason.as_deref() == Some("DesiredSetTooLarge"))),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, KubeOp::RecordEvent { event, .. }
        if event.reason.as_deref() == Some("DesiredSetTooLarge")))
    );
    // the device is not frozen: a small pod still reaches it
    let p = pod("small", "u4", "pi-01");
    let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&dev));
    h.fleet.on_pod_translated(&dev, p, t);
    let sets = publishes(&drain(&mut h.outbox), "pi-01");
    assert_eq!(sets.len(), 1);
    assert!(sets[0].pods.iter().any(|p| p.uid == "u4"));
    assert!(
        edge_protocol::Message::DesiredSet(sets[0].clone())
            .encode()
            .is_ok()
    );
}

#[tokio::test]
async fn log_streams_end_and_are_cancelled_when_the_device_goes_offline() {
    let mut h = harness();
    let dev = id("pi-01");
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    drain(&mut h.outbox);
    let (request, mut rx) = h.fleet.start_log_request(&dev, LogRequest::default());
    drain(&mut h.outbox);
    send(
        &h.fleet,
        "pi-01",
        UpChannel::State,
        DeviceState {
            online: false,
            reason: None,
            since: 0,
        },
    );
    assert!(rx.recv().await.is_none(), "the kubelet API's stream ends");
    let out = drain(&mut h.outbox);
    assert!(
        out.iter()
            .any(|o| matches!(o, Outgoing::LogCancel { device, id }
            if device == &dev && id == &request)),
        "the device is told to stop streaming: {out:?}"
    );
}

#[test]
fn statuses_reported_before_the_pod_watch_caught_up_are_asked_for_again() {
    // a restarted gateway: the device's set is restored from the store, the device
    // reports before the pod watch has listed the pods (that report cannot be mapped)
    let mut h = harness();
    let dev = id("pi-01");
    let p = pod("web", "u1", "pi-01");
    let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&dev)).unwrap();
    h.fleet
        .store()
        .put_device(
            &dev,
            &crate::device_sync::PersistedDevice {
                desired: DesiredSet {
                    generation: 3,
                    pods: vec![t.spec.clone()],
                },
                acked_generation: 3,
            },
        )
        .unwrap();
    let restarted = TestFleet::new(
        h.fleet.settings.clone(),
        h.fleet.store().clone(),
        KubeOps::detached().0,
        h.fleet.outbox.clone(),
        h.fleet.pod_watch.clone(),
    );
    send(&restarted, "pi-01", UpChannel::Hello, NodeReport::default());
    drain(&mut h.outbox);
    send(
        &restarted,
        "pi-01",
        UpChannel::Status,
        PodStatusReport {
            sequence: 1,
            observed_generation: 3,
            full: true,
            pods: vec![running("u1")],
        },
    );
    restarted.on_pod_translated(&dev, p, Ok(t));
    restarted.on_pods_synced(&dev, BTreeSet::from(["u1".to_owned()]));
    let out = drain(&mut h.outbox);
    assert!(
        out.iter()
            .any(|o| matches!(o, Outgoing::StatusResync { device, .. } if device == &dev)),
        "the dropped statuses are asked for again: {out:?}"
    );
}
