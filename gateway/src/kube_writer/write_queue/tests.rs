use k8s_openapi::api::core::v1::{Event, NodeStatus, PodStatus};

use super::*;

fn dev(n: &str) -> DeviceId {
    DeviceId::new(n).unwrap()
}

fn lease(d: &str, seconds: i32) -> KubeOp {
    KubeOp::RenewLease {
        device: dev(d),
        node_uid: None,
        duration_seconds: seconds,
    }
}

fn pod_status(uid: &str, phase: &str) -> KubeOp {
    KubeOp::PatchPodStatus {
        device: dev("pi-01"),
        namespace: "default".into(),
        name: "p".into(),
        uid: uid.into(),
        status: Box::new(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn event() -> KubeOp {
    KubeOp::RecordEvent {
        device: dev("pi-01"),
        event: Box::new(Event::default()),
    }
}

#[test]
fn a_stuck_api_does_not_grow_the_queue_with_renewals_and_statuses() {
    let q = WriteQueue::new(Arc::new(Metrics::new()));
    for i in 0..10_000 {
        q.push(lease("pi-01", i));
        q.push(lease("pi-02", i));
        q.push(pod_status(
            "u1",
            if i % 2 == 0 { "Running" } else { "Failed" },
        ));
    }
    assert_eq!(q.len(), 3);
    // the latest of each, in the place of the first
    assert!(
        matches!(q.try_pop(), Some(KubeOp::RenewLease { device, duration_seconds: 9999, .. }) if device.as_str() == "pi-01")
    );
    assert!(matches!(
        q.try_pop(),
        Some(KubeOp::RenewLease {
            duration_seconds: 9999,
            ..
        })
    ));
    assert!(
        matches!(q.try_pop(), Some(KubeOp::PatchPodStatus { status, .. }) if status.phase.as_deref() == Some("Failed"))
    );
    assert!(q.try_pop().is_none());
    // once taken, a new renewal queues again
    q.push(lease("pi-01", 1));
    assert_eq!(q.len(), 1);
}

#[test]
fn events_are_capped_and_other_writes_keep_their_order() {
    let q = WriteQueue::new(Arc::new(Metrics::new()));
    q.push(pod_status("u1", "Pending"));
    for _ in 0..(MAX_QUEUED_EVENTS + 500) {
        q.push(event());
    }
    q.push(KubeOp::DeletePod {
        device: dev("pi-01"),
        namespace: "default".into(),
        name: "p".into(),
        uid: "u1".into(),
    });
    assert_eq!(q.len(), MAX_QUEUED_EVENTS + 2);
    assert!(matches!(q.try_pop(), Some(KubeOp::PatchPodStatus { .. })));
    let mut last = None;
    while let Some(op) = q.try_pop() {
        last = Some(op);
    }
    assert!(matches!(last, Some(KubeOp::DeletePod { .. })));
}

#[test]
fn an_upsert_withdraws_the_older_node_status_waiting_before_it() {
    let q = WriteQueue::new(Arc::new(Metrics::new()));
    q.push(KubeOp::PatchNodeStatus {
        device: dev("pi-01"),
        status: Box::new(NodeStatus::default()),
    });
    q.push(KubeOp::UpsertNode {
        device: dev("pi-01"),
        report: Box::default(),
        previous_labels: None,
        status: Box::new(NodeStatus::default()),
        now: crate::status_mapping::now_time(jiff::Timestamp::now()),
    });
    q.push(KubeOp::PatchNodeStatus {
        device: dev("pi-01"),
        status: Box::new(NodeStatus::default()),
    });
    assert!(matches!(q.try_pop(), Some(KubeOp::UpsertNode { .. })));
    assert!(matches!(q.try_pop(), Some(KubeOp::PatchNodeStatus { .. })));
    assert!(q.try_pop().is_none());
}
