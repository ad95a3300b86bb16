//! A running pod whose new translation fails (a ConfigMap key it mounts was removed, a
//! token request failed): like a kubelet failing a volume update, the device keeps the
//! previous spec, a `FailedMount` Warning says why, and the pod's status is left alone;
//! a pod the device does not run yet gets the config-error status as before.

use super::*;
use crate::translation::TranslationError;

fn failed_mounts(ops: &[KubeOp]) -> Vec<String> {
    ops.iter()
        .filter_map(|op| match op {
            KubeOp::RecordEvent { event, .. } if event.reason.as_deref() == Some("FailedMount") => {
                event.message.clone()
            }
            _ => None,
        })
        .collect()
}

fn status_patches(ops: &[KubeOp]) -> usize {
    ops.iter()
        .filter(|op| matches!(op, KubeOp::PatchPodStatus { .. }))
        .count()
}

#[test]
fn a_running_pod_keeps_its_spec_when_its_update_cannot_be_translated() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    bind(&h, "pi-01", "web", "u1");
    drain(&mut h.ops);
    drain(&mut h.outbox);
    let broken = || {
        Err(TranslationError::ConfigMapKeyNotFound {
            name: "cfg".into(),
            key: "greeting".into(),
        })
    };
    h.fleet
        .on_pod_translated(&id("pi-01"), pod("web", "u1", "pi-01"), broken());
    let ops = drain(&mut h.ops);
    let events = failed_mounts(&ops);
    assert_eq!(events.len(), 1, "{ops:?}");
    assert!(
        events[0].contains("the device keeps running the previous spec")
            && events[0].contains("couldn't find key greeting in ConfigMap cfg"),
        "{events:?}"
    );
    assert_eq!(
        status_patches(&ops),
        0,
        "a running pod's status is left alone"
    );
    let out = drain(&mut h.outbox);
    assert!(
        !out.iter().any(|o| matches!(o, Outgoing::Desired { .. })),
        "nothing new is sent: {out:?}"
    );
    // the same failure again: no second event
    h.fleet
        .on_pod_translated(&id("pi-01"), pod("web", "u1", "pi-01"), broken());
    assert!(failed_mounts(&drain(&mut h.ops)).is_empty());

    // a pod the device does not have yet: the config-error status, as before
    h.fleet
        .on_pod_translated(&id("pi-01"), pod("new", "u2", "pi-01"), broken());
    let ops = drain(&mut h.ops);
    assert!(failed_mounts(&ops).is_empty(), "{ops:?}");
    assert_eq!(status_patches(&ops), 1, "{ops:?}");
}
