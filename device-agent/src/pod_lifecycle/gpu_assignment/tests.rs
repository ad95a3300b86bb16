use std::collections::BTreeMap;

use edge_protocol::{
    ContainerSpec, DesiredSet, EventType, PodPhase, PodSpec, PodStatus, ResourceRequirements,
    RestartPolicy,
};

use super::super::{Effect, Input, Outcome, PodLifecycle, spec_hash};
use super::{GpuAllocationError, GpuPool, GpuRequest};
use crate::config::LifecycleTimings;
use crate::container_labels::ContainerIdentity;
use crate::container_runtime::{ContainerSnapshot, RunState};

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn req(name: &str, count: u64, run_to_completion: bool) -> GpuRequest {
    GpuRequest {
        container: name.into(),
        count,
        run_to_completion,
    }
}

fn key(uid: &str, name: &str) -> (String, String) {
    (uid.into(), name.into())
}

#[test]
fn containers_get_distinct_devices_and_a_pod_asking_too_many_gets_none() {
    let mut pool = GpuPool::new(ids(&["g0", "g1", "g2"]));
    pool.admit("a", &[req("x", 1, false), req("y", 1, false)])
        .unwrap();
    assert_eq!(pool.assigned(&key("a", "x")), ids(&["g0"]));
    assert_eq!(pool.assigned(&key("a", "y")), ids(&["g1"]));
    let e = pool
        .admit("b", &[req("z", 1, false), req("w", 1, false)])
        .unwrap_err();
    assert_eq!(
        e,
        GpuAllocationError::Unavailable {
            requested: 1,
            available: 0
        }
    );
    assert_eq!(
        e.to_string(),
        "requested number of devices unavailable for nvidia.com/gpu. Requested: 1, Available: 0"
    );
    // All or nothing: the pod that did not fit holds nothing.
    assert!(pool.assigned(&key("b", "z")).is_empty());
    assert_eq!(pool.free(), ids(&["g2"]));
    let e = pool.admit("c", &[req("big", 2, false)]).unwrap_err();
    assert_eq!(
        e,
        GpuAllocationError::Unavailable {
            requested: 2,
            available: 1
        }
    );
    // Admission is idempotent for containers that already hold devices.
    pool.admit("a", &[req("x", 1, false), req("y", 1, false)])
        .unwrap();
    assert_eq!(pool.free(), ids(&["g2"]));
}

#[test]
fn freeing_a_pod_returns_its_devices() {
    let mut pool = GpuPool::new(ids(&["g0", "g1"]));
    pool.admit("a", &[req("x", 2, false)]).unwrap();
    assert!(pool.admit("b", &[req("y", 1, false)]).is_err());
    pool.retain_pods(|uid| uid != "a");
    assert_eq!(pool.free(), ids(&["g0", "g1"]));
    pool.admit("b", &[req("y", 1, false)]).unwrap();
    assert_eq!(pool.assigned(&key("b", "y")), ids(&["g0"]));
}

#[test]
fn init_container_devices_are_given_again_to_the_containers_after_them() {
    let mut pool = GpuPool::new(ids(&["g0", "g1"]));
    pool.admit(
        "a",
        &[
            req("init", 1, true),
            req("side", 1, false),
            req("app", 1, false),
        ],
    )
    .unwrap();
    assert_eq!(pool.assigned(&key("a", "init")), ids(&["g0"]));
    assert_eq!(pool.assigned(&key("a", "side")), ids(&["g0"]));
    assert_eq!(pool.assigned(&key("a", "app")), ids(&["g1"]));
    assert!(pool.free().is_empty());
}

#[test]
fn a_node_without_gpus_refuses_as_unregistered() {
    let mut pool = GpuPool::default();
    let e = pool.admit("a", &[req("x", 1, false)]).unwrap_err();
    assert_eq!(e, GpuAllocationError::Unregistered);
    assert_eq!(
        e.to_string(),
        "cannot allocate unregistered device nvidia.com/gpu"
    );
}

#[test]
fn adoption_takes_back_known_devices_only_once() {
    let mut pool = GpuPool::new(ids(&["g0", "g1"]));
    pool.adopt(key("a", "x"), &ids(&["g1", "gone"]));
    pool.adopt(key("a", "x"), &ids(&["g0"]));
    assert_eq!(pool.assigned(&key("a", "x")), ids(&["g1"]));
    assert_eq!(pool.free(), ids(&["g0"]));
}

// ---- the reconciler ------------------------------------------------------------------

fn gpu_pod(uid: &str, gpus: &[u64], policy: RestartPolicy) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        namespace: "ns".into(),
        name: format!("pod-{uid}"),
        containers: gpus
            .iter()
            .enumerate()
            .map(|(i, n)| ContainerSpec {
                name: format!("c{i}"),
                image: "img:1".into(),
                resources: ResourceRequirements {
                    extended: if *n > 0 {
                        BTreeMap::from([("nvidia.com/gpu".to_owned(), *n)])
                    } else {
                        BTreeMap::new()
                    },
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect(),
        restart_policy: policy,
        termination_grace_period_seconds: 5,
        host_network: true,
        ..Default::default()
    }
}

fn snap(p: &PodSpec, name: &str, state: RunState, gpus: &[&str]) -> ContainerSnapshot {
    ContainerSnapshot {
        id: format!("{}-{name}", p.uid),
        identity: ContainerIdentity {
            device: "d".into(),
            pod_uid: p.uid.clone(),
            pod_namespace: p.namespace.clone(),
            pod_name: p.name.clone(),
            container_name: name.into(),
            restart_count: 0,
            spec_hash: p.container(name).map(spec_hash).unwrap_or_default(),
            grace_period_seconds: 5,
            sandbox_id: String::new(),
            gpu_devices: ids(gpus),
        },
        state,
        image_id: "sha".into(),
        ip_address: None,
    }
}

fn lifecycle(devices: &[&str], pods: &[&PodSpec]) -> PodLifecycle {
    let mut lc = PodLifecycle::new(LifecycleTimings::default(), None).with_gpus(ids(devices));
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: pods.iter().map(|p| (*p).clone()).collect(),
    }));
    lc
}

/// Lists `list`, marks the pods' volumes ready and their images present; all effects.
fn drive(lc: &mut PodLifecycle, pods: &[&PodSpec], list: Vec<ContainerSnapshot>) -> Vec<Effect> {
    let mut fx = lc.handle(Input::Containers { list, now: 1_000 });
    for p in pods {
        fx.extend(lc.handle(Input::Done(Outcome::VolumesReady {
            pod_uid: p.uid.clone(),
            result: Ok(()),
        })));
        for c in &p.containers {
            fx.extend(lc.handle(Input::Done(Outcome::ImageReady {
                key: key(&p.uid, &c.name),
                pulled: false,
            })));
        }
    }
    fx
}

fn created_gpus(fx: &[Effect]) -> BTreeMap<(String, String), Vec<String>> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Create { key, gpus, .. } => Some((key.clone(), gpus.clone())),
            _ => None,
        })
        .collect()
}

fn status_of<'a>(fx: &'a [Effect], uid: &str) -> Option<&'a PodStatus> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Report(r) => r.iter().rev().find(|s| s.uid == uid),
            _ => None,
        })
        .next_back()
}

#[test]
fn creates_carry_the_assigned_devices_and_a_pod_that_does_not_fit_fails_alone() {
    let a = gpu_pod("a", &[1, 0], RestartPolicy::Always);
    let b = gpu_pod("b", &[2], RestartPolicy::Always);
    let plain = gpu_pod("plain", &[0], RestartPolicy::Always);
    let mut lc = lifecycle(&["g0", "g1"], &[&a, &b, &plain]);
    let fx = drive(&mut lc, &[&a, &b, &plain], Vec::new());
    let created = created_gpus(&fx);
    assert_eq!(created.get(&key("a", "c0")), Some(&ids(&["g0"])));
    assert_eq!(created.get(&key("a", "c1")), Some(&Vec::new()));
    assert_eq!(created.get(&key("plain", "c0")), Some(&Vec::new()));
    assert!(!created.contains_key(&key("b", "c0")), "{created:?}");
    let failed = status_of(&fx, "b").expect("b reported");
    assert_eq!(failed.phase, PodPhase::Failed);
    assert_eq!(failed.reason.as_deref(), Some("UnexpectedAdmissionError"));
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "Allocate failed due to requested number of devices unavailable for \
             nvidia.com/gpu. Requested: 2, Available: 1, which is unexpected"
        )
    );
    let events: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Events(ev) => Some(ev.clone()),
            _ => None,
        })
        .flatten()
        .filter(|e| e.pod_uid == "b")
        .collect();
    assert!(
        events.iter().any(|e| e.event_type == EventType::Warning
            && e.reason == "UnexpectedAdmissionError"
            && e.message.contains("Requested: 2, Available: 1")),
        "{events:?}"
    );
}

#[test]
fn a_restarted_agent_takes_assignments_back_from_the_labels() {
    let a = gpu_pod("a", &[1], RestartPolicy::Always);
    let b = gpu_pod("b", &[1], RestartPolicy::Always);
    // `a` runs on g1 (its label says so); the new agent must give `b` g0, not g1.
    let mut lc = lifecycle(&["g0", "g1"], &[&a, &b]);
    let running = snap(&a, "c0", RunState::Running { started_at: 500 }, &["g1"]);
    let fx = drive(&mut lc, &[&a, &b], vec![running]);
    let created = created_gpus(&fx);
    assert_eq!(created.get(&key("b", "c0")), Some(&ids(&["g0"])));
    assert!(!created.contains_key(&key("a", "c0")), "a keeps running");
}

#[test]
fn devices_are_freed_when_a_pod_goes_or_is_done() {
    let a = gpu_pod("a", &[1], RestartPolicy::Never);
    let b = gpu_pod("b", &[1], RestartPolicy::Always);
    let mut lc = lifecycle(&["g0"], &[&a]);
    let fx = drive(
        &mut lc,
        &[&a],
        vec![snap(
            &a,
            "c0",
            RunState::Running { started_at: 500 },
            &["g0"],
        )],
    );
    assert!(created_gpus(&fx).is_empty());
    // `a` finished (restartPolicy Never): its GPU is free for `b` (which the scheduler
    // binds once `a` is reported Succeeded).
    let done = RunState::Exited {
        exit_code: 0,
        started_at: Some(500),
        finished_at: Some(900),
        oom_killed: false,
        error: None,
    };
    let listed = vec![snap(&a, "c0", done, &["g0"])];
    lc.handle(Input::Containers {
        list: listed.clone(),
        now: 1_000,
    });
    lc.handle(Input::Desired(DesiredSet {
        generation: 2,
        pods: vec![a.clone(), b.clone()],
    }));
    let fx = drive(&mut lc, &[&a, &b], listed);
    assert_eq!(
        created_gpus(&fx).get(&key("b", "c0")),
        Some(&ids(&["g0"])),
        "{fx:?}"
    );
    // `b` leaves the desired set: once its container is gone, a new pod gets g0.
    let c = gpu_pod("c", &[1], RestartPolicy::Always);
    lc.handle(Input::Desired(DesiredSet {
        generation: 3,
        pods: vec![c.clone()],
    }));
    let fx = drive(&mut lc, &[&c], Vec::new());
    assert_eq!(created_gpus(&fx).get(&key("c", "c0")), Some(&ids(&["g0"])));
}

#[test]
fn a_deleted_pod_keeps_its_devices_while_its_container_runs() {
    let a = gpu_pod("a", &[1], RestartPolicy::Always);
    let c = gpu_pod("c", &[1], RestartPolicy::Always);
    let mut lc = lifecycle(&["g0"], &[&c]);
    // `a` is no longer desired but its container (on g0) still stops.
    let fx = drive(
        &mut lc,
        &[&c],
        vec![snap(
            &a,
            "c0",
            RunState::Running { started_at: 500 },
            &["g0"],
        )],
    );
    assert!(created_gpus(&fx).is_empty(), "{fx:?}");
    assert_eq!(
        status_of(&fx, "c").and_then(|s| s.reason.as_deref()),
        Some("UnexpectedAdmissionError")
    );
}
