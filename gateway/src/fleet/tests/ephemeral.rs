//! `kubectl debug` through the fleet: the pod gains an ephemeral container, the device
//! gets it in a new desired set, streams and logs find it, its status comes back.

use super::*;

fn debugged(uid: &str) -> Arc<Pod> {
    let mut p = (*pod("web", uid, "pi-01")).clone();
    if let Some(spec) = p.spec.as_mut() {
        spec.ephemeral_containers = Some(vec![
            serde_json::from_value(serde_json::json!({
                "name": "debugger", "image": "busybox:dbg", "targetContainerName": "app",
                "stdin": true, "tty": true
            }))
            .unwrap(),
        ]);
    }
    Arc::new(p)
}

#[test]
fn an_added_ephemeral_container_is_delivered_found_and_reported() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    bind(&h, "pi-01", "web", "u1");
    let before = publishes(&drain(&mut h.outbox), "pi-01");
    let generation = before.last().unwrap().generation;
    assert!(matches!(
        h.fleet.log_target("default", "web", "debugger"),
        Err(LogTargetError::ContainerNotFound { .. })
    ));

    let id = id("pi-01");
    let p = debugged("u1");
    let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&id));
    h.fleet.on_pod_translated(&id, p, t);
    let sets = publishes(&drain(&mut h.outbox), "pi-01");
    let set = sets.last().expect("the changed pod is delivered again");
    assert!(set.generation > generation);
    let e = &set.pods[0].ephemeral_containers;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].target_container_name.as_deref(), Some("app"));
    assert!(e[0].stdin && e[0].tty);

    let placement = h
        .fleet
        .runner
        .borrow()
        .state()
        .pod_placement("default", "web")
        .unwrap();
    assert_eq!(placement.containers, vec!["app", "debugger"]);
    assert!(h.fleet.log_target("default", "web", "debugger").is_ok());

    drain(&mut h.ops);
    let mut status = running("u1");
    status.ephemeral_containers = vec![ContainerStatus {
        name: "debugger".into(),
        state: ContainerState::Running { started_at: 5 },
        ..Default::default()
    }];
    send(
        &h.fleet,
        "pi-01",
        UpChannel::Status,
        PodStatusReport {
            sequence: 1,
            observed_generation: set.generation,
            full: false,
            pods: vec![status],
        },
    );
    let ops = drain(&mut h.ops);
    let [KubeOp::PatchPodStatus { status, .. }] = &ops[..] else {
        panic!("{ops:?}")
    };
    let eph = status.ephemeral_container_statuses.as_ref().unwrap();
    assert_eq!(eph[0].name, "debugger");
    assert!(eph[0].state.as_ref().unwrap().running.is_some());

    // The device's events about it name it in the pod's ephemeral containers.
    send(
        &h.fleet,
        "pi-01",
        UpChannel::Events,
        PodEventReport {
            events: vec![edge_protocol::PodEvent {
                pod_uid: "u1".into(),
                container: Some("debugger".into()),
                reason: "Started".into(),
                message: "Started container debugger".into(),
                ..Default::default()
            }],
        },
    );
    let ops = drain(&mut h.ops);
    let [KubeOp::RecordEvent { event, .. }] = &ops[..] else {
        panic!("{ops:?}")
    };
    assert_eq!(
        event.involved_object.field_path.as_deref(),
        Some("spec.ephemeralContainers{debugger}")
    );
}
