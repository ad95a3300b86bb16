//! A device back online whose pods Kubernetes evicted meanwhile: an Event on each says
//! why the device now stops them; a pod deleted for another reason gets none.

use super::*;

fn state(h: &Harness, device: &str, online: bool) {
    send(
        &h.fleet,
        device,
        UpChannel::State,
        DeviceState {
            online,
            reason: None,
            since: 0,
        },
    );
}

/// The pod as the watch sees it after a deletion: evicted by the taint manager or not.
fn deleted(node: &str, name: &str, uid: &str, evicted: bool) -> Arc<Pod> {
    let conditions = if evicted {
        serde_json::json!([{"type": "DisruptionTarget", "status": "True",
            "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint"}])
    } else {
        serde_json::json!([])
    };
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                "deletionTimestamp": "2026-12-06T04:00:00Z", "deletionGracePeriodSeconds": 30},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]},
            "status": {"conditions": conditions}
        }))
        .unwrap(),
    )
}

fn evicted_events(ops: &[KubeOp]) -> Vec<String> {
    ops.iter()
        .filter_map(|op| match op {
            KubeOp::RecordEvent { event, .. }
                if event.reason.as_deref() == Some("EvictedWhileOffline") =>
            {
                event.involved_object.uid.clone()
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_returning_device_says_why_it_stops_pods_evicted_meanwhile() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    bind(&h, "pi-01", "evicted", "u1");
    bind(&h, "pi-01", "deleted", "u2");
    state(&h, "pi-01", false);
    let device = id("pi-01");
    for (name, uid, evicted) in [("evicted", "u1", true), ("deleted", "u2", false)] {
        let p = deleted("pi-01", name, uid, evicted);
        let t = translate_pod(
            &p,
            &PodReferences::default(),
            &h.fleet.node_context(&device),
        );
        h.fleet.on_pod_translated(&device, p, t);
    }
    assert!(
        evicted_events(&drain(&mut h.ops)).is_empty(),
        "nothing while the device is offline"
    );
    state(&h, "pi-01", true);
    assert_eq!(evicted_events(&drain(&mut h.ops)), ["u1"]);
}

#[test]
fn only_the_returning_devices_own_evicted_pods_get_the_event() {
    let mut h = harness();
    for device in ["pi-01", "pi-02"] {
        send(&h.fleet, device, UpChannel::Hello, NodeReport::default());
        registered(&h, device);
        state(&h, device, false);
    }
    bind(&h, "pi-01", "on-one", "u1");
    bind(&h, "pi-02", "on-two", "u2");
    for (device, name, uid) in [("pi-01", "on-one", "u1"), ("pi-02", "on-two", "u2")] {
        let device = id(device);
        let p = deleted(device.as_str(), name, uid, true);
        let t = translate_pod(
            &p,
            &PodReferences::default(),
            &h.fleet.node_context(&device),
        );
        h.fleet.on_pod_translated(&device, p, t);
    }
    drain(&mut h.ops);
    state(&h, "pi-02", true);
    assert_eq!(evicted_events(&drain(&mut h.ops)), ["u2"], "pi-02 is back");
    state(&h, "pi-01", true);
    assert_eq!(evicted_events(&drain(&mut h.ops)), ["u1"], "pi-01 is back");
}
