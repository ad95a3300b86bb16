//! Unit tests of the pure reconciler (`PodLifecycle`) with pods the node ends: evicted
//! under node pressure (an `Evicted` Event, containers stopped and kept, never
//! restarted, the pod `Failed` with reason `Evicted`) or past `activeDeadlineSeconds`
//! (`DeadlineExceeded`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use edge_agent::config::LifecycleTimings;
use edge_agent::container_labels::ContainerIdentity;
use edge_agent::container_runtime::{ContainerSnapshot, RunState};
use edge_agent::pod_lifecycle::{Effect, Input, Outcome, PodLifecycle, spec_hash};
use edge_protocol::{ContainerSpec, DesiredSet, EventType, PodPhase, PodSpec, RestartPolicy};

const S: u64 = 1000;
const MESSAGE: &str =
    "The node was low on resource: ephemeral-storage. Threshold quantity: 10, available: 9. ";

fn pod(uid: &str) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        namespace: "default".into(),
        name: format!("pod-{uid}"),
        containers: vec![ContainerSpec {
            name: "main".into(),
            image: "localhost/busybox:test".into(),
            ..Default::default()
        }],
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 30,
        ..Default::default()
    }
}

fn snapshot(p: &PodSpec, id: &str, state: RunState) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.into(),
        identity: ContainerIdentity {
            device: "dev".into(),
            pod_uid: p.uid.clone(),
            pod_namespace: p.namespace.clone(),
            pod_name: p.name.clone(),
            container_name: "main".into(),
            restart_count: 0,
            spec_hash: spec_hash(&p.containers[0]),
            grace_period_seconds: p.termination_grace_period_seconds,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        },
        state,
        image_id: "sha256:abc".into(),
        ip_address: None,
    }
}

fn exited(code: i32) -> RunState {
    RunState::Exited {
        exit_code: code,
        started_at: Some(90 * S),
        finished_at: Some(101 * S),
        oom_killed: false,
        error: None,
    }
}

/// Two running pods (started at 90 s), volumes ready.
fn two_running() -> (PodLifecycle, PodSpec, PodSpec) {
    two_running_with(pod("a"), pod("b"))
}

fn two_running_with(a: PodSpec, b: PodSpec) -> (PodLifecycle, PodSpec, PodSpec) {
    let timings = LifecycleTimings {
        sync_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let mut lc = PodLifecycle::new(timings, None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![a.clone(), b.clone()],
    }));
    let list = vec![
        snapshot(&a, "ca", RunState::Running { started_at: 90 * S }),
        snapshot(&b, "cb", RunState::Running { started_at: 90 * S }),
    ];
    lc.handle(Input::Containers { list, now: 100 * S });
    for uid in ["a", "b"] {
        lc.handle(Input::Done(Outcome::VolumesReady {
            pod_uid: uid.into(),
            result: Ok(()),
        }));
    }
    (lc, a, b)
}

/// The Stop effects: container id and grace period.
fn stops(fx: &[Effect]) -> Vec<(&str, Duration)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Stop { id, grace } => Some((id.as_str(), *grace)),
            _ => None,
        })
        .collect()
}

/// The event with this reason, if any.
fn event(fx: &[Effect], reason: &str) -> Option<edge_protocol::PodEvent> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Events(ev) => Some(ev.clone()),
            _ => None,
        })
        .flatten()
        .find(|e| e.reason == reason)
}

#[test]
fn an_evicted_pod_is_stopped_reported_failed_and_never_restarted() {
    let (mut lc, a, b) = two_running();
    let fx = lc.handle(Input::Evict {
        pod_uid: "a".into(),
        message: MESSAGE.into(),
    });
    assert!(lc.is_evicted("a") && !lc.is_evicted("b"));
    // the next eviction waits until this one is cleaned up
    assert!(lc.eviction_in_progress());
    let uids: Vec<&str> = lc.evictable_pods().iter().map(|p| p.uid.as_str()).collect();
    assert_eq!(uids, ["b"]);
    // stopped at once (the hard eviction grace period), the other pod untouched
    assert_eq!(stops(&fx), [("ca", Duration::from_secs(1))]);
    let evicted = event(&fx, "Evicted").unwrap();
    assert_eq!(evicted.event_type, EventType::Warning);
    assert_eq!(evicted.message, MESSAGE);
    assert_eq!(evicted.pod_uid, "a");
    // the container stops: neither removed nor restarted, pod Failed/Evicted
    let list = vec![
        snapshot(&a, "ca", exited(137)),
        snapshot(&b, "cb", RunState::Running { started_at: 90 * S }),
    ];
    let fx = lc.handle(Input::Containers {
        list: list.clone(),
        now: 200 * S,
    });
    assert!(
        !fx.iter().any(|e| matches!(
            e,
            Effect::Remove { .. }
                | Effect::Create { .. }
                | Effect::EnsureImage { .. }
                | Effect::Start { .. }
        )),
        "{fx:?}"
    );
    // its directory (emptyDir volumes) goes once its containers stopped, once
    let cleanups = |fx: &[Effect]| {
        fx.iter()
            .filter(|e| matches!(e, Effect::CleanupPod { pod_uid } if pod_uid == "a"))
            .count()
    };
    assert_eq!(cleanups(&fx), 1, "{fx:?}");
    assert!(!lc.eviction_in_progress());
    let status = lc.full_status().into_iter().find(|s| s.uid == "a").unwrap();
    assert_eq!(status.phase, PodPhase::Failed);
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert_eq!(status.message.as_deref(), Some(MESSAGE));
    let other = lc.full_status().into_iter().find(|s| s.uid == "b").unwrap();
    assert_eq!(other.phase, PodPhase::Running);
    // much later, after any back-off: still not restarted
    let fx = lc.handle(Input::Containers {
        list,
        now: 2000 * S,
    });
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::Create { .. } | Effect::Start { .. }))
    );
    assert_eq!(cleanups(&fx), 0);
    // evicting again says nothing new; a second pod can still be evicted
    let fx = lc.handle(Input::Evict {
        pod_uid: "a".into(),
        message: MESSAGE.into(),
    });
    assert!(!fx.iter().any(|e| matches!(e, Effect::Events(_))));
    let _ = b;
}

#[test]
fn a_deleted_evicted_pod_is_removed_as_usual() {
    let (mut lc, mut a, b) = two_running();
    lc.handle(Input::Evict {
        pod_uid: "a".into(),
        message: MESSAGE.into(),
    });
    a.deletion_grace_period_seconds = Some(0);
    lc.handle(Input::Desired(DesiredSet {
        generation: 2,
        pods: vec![a.clone(), b.clone()],
    }));
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(&a, "ca", exited(137))],
        now: 200 * S,
    });
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Remove { id } if id == "ca")),
        "{fx:?}"
    );
}

#[test]
fn a_pod_past_its_active_deadline_is_ended_with_deadline_exceeded() {
    let mut a = pod("a");
    a.active_deadline_seconds = Some(50);
    let (mut lc, a, b) = two_running_with(a, pod("b"));
    let running = |a: &PodSpec, b: &PodSpec| {
        vec![
            snapshot(a, "ca", RunState::Running { started_at: 90 * S }),
            snapshot(b, "cb", RunState::Running { started_at: 90 * S }),
        ]
    };
    // 49 s after it started: nothing yet
    let fx = lc.handle(Input::Containers {
        list: running(&a, &b),
        now: 139 * S,
    });
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Stop { .. })),
        "{fx:?}"
    );
    let fx = lc.handle(Input::Containers {
        list: running(&a, &b),
        now: 141 * S,
    });
    // the pod's own grace period, the other pod untouched
    assert_eq!(stops(&fx), [("ca", Duration::from_secs(30))]);
    assert_eq!(
        event(&fx, "DeadlineExceeded").unwrap().message,
        "Pod was active on the node longer than the specified deadline"
    );
    let fx = lc.handle(Input::Containers {
        list: vec![
            snapshot(&a, "ca", exited(143)),
            snapshot(&b, "cb", RunState::Running { started_at: 90 * S }),
        ],
        now: 2000 * S,
    });
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::Create { .. } | Effect::Start { .. }))
    );
    let status = lc.full_status().into_iter().find(|s| s.uid == "a").unwrap();
    assert_eq!(status.phase, PodPhase::Failed);
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    // not an eviction: the eviction manager does not wait for it
    assert!(!lc.is_evicted("a") && !lc.eviction_in_progress());
}
