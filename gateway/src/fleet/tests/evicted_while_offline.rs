//! A device back online whose pods Kubernetes evicted meanwhile: an Event on each says
//! why the device now stops them; a pod deleted for another reason gets none.

use super::*;

fn state(h: &Harness, online: bool) {
    send(
        &h.fleet,
        "pi-01",
        UpChannel::State,
        DeviceState {
            online,
            reason: None,
            since: 0,
        },
    );
}

/// The pod as the watch sees it after a deletion: evicted by the taint manager or not.
fn deleted(name: &str, uid: &str, evicted: bool) -> Arc<Pod> {
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
            "spec": {"nodeName": "pi-01", "containers": [{"name": "app", "image": "busybox"}]},
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
    state(&h, false);
    let device = id("pi-01");
    for (name, uid, evicted) in [("evicted", "u1", true), ("deleted", "u2", false)] {
        let p = deleted(name, uid, evicted);
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
    state(&h, true);
    assert_eq!(evicted_events(&drain(&mut h.ops)), ["u1"]);
}
