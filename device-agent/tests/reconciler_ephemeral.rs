//! Unit tests of the pure reconciler (`PodLifecycle`) with ephemeral containers
//! (`kubectl debug`): started once in the namespaces they join, never restarted.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use edge_agent::config::LifecycleTimings;
use edge_agent::container_labels::ContainerIdentity;
use edge_agent::container_runtime::{ContainerSnapshot, RunState};
use edge_agent::pod_lifecycle::{Effect, Input, NamespaceShare, Outcome, PodLifecycle, spec_hash};
use edge_protocol::{
    ContainerSpec, ContainerState, DesiredSet, EphemeralContainerSpec, PodPhase, PodSpec,
    PodStatus, RestartPolicy,
};

const S: u64 = 1000;

fn lifecycle() -> PodLifecycle {
    let timings = LifecycleTimings {
        sync_interval: Duration::from_secs(1),
        backoff_initial: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        backoff_reset: Duration::from_secs(600),
    };
    PodLifecycle::new(timings, Some("10.0.0.5".into()))
}

/// A pod with `main` and `sidecar` and the ephemeral container `debugger`.
fn debugged_pod(target: Option<&str>, host_network: bool) -> PodSpec {
    let container = |name: &str| ContainerSpec {
        name: name.into(),
        image: "localhost/busybox:test".into(),
        command: vec!["sleep".into(), "1000".into()],
        ..Default::default()
    };
    PodSpec {
        uid: "u-debug".into(),
        namespace: "default".into(),
        name: "debugged".into(),
        containers: vec![container("main"), container("sidecar")],
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 5,
        host_network,
        ephemeral_containers: vec![EphemeralContainerSpec {
            name: "debugger".into(),
            image: "localhost/busybox:test".into(),
            command: vec!["sh".into()],
            stdin: true,
            tty: true,
            target_container_name: target.map(str::to_owned),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn snapshot(p: &PodSpec, name: &str, id: &str, state: RunState) -> ContainerSnapshot {
    let spec = p
        .containers
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .or_else(|| p.ephemeral_container(name).map(|e| e.to_container_spec()))
        .unwrap();
    ContainerSnapshot {
        id: id.into(),
        identity: ContainerIdentity {
            device: "dev".into(),
            pod_uid: p.uid.clone(),
            pod_namespace: p.namespace.clone(),
            pod_name: p.name.clone(),
            container_name: name.into(),
            restart_count: 0,
            spec_hash: spec_hash(&spec),
            grace_period_seconds: p.termination_grace_period_seconds,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        },
        state,
        image_id: "sha256:abc".into(),
        ip_address: None,
    }
}

fn running(at: u64) -> RunState {
    RunState::Running { started_at: at }
}

fn debugger_key() -> (String, String) {
    ("u-debug".into(), "debugger".into())
}

fn for_debugger(e: &Effect) -> bool {
    match e {
        Effect::EnsureImage { key, .. }
        | Effect::Create { key, .. }
        | Effect::Start { key, .. } => key.1 == "debugger",
        _ => false,
    }
}

fn last_report(effects: &[Effect]) -> Option<PodStatus> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Report(p) => p.last().cloned(),
            _ => None,
        })
        .next_back()
}

/// Takes `p` with `list` running to the point where its volumes are ready.
fn adopted(p: &PodSpec, list: Vec<ContainerSnapshot>) -> (PodLifecycle, Vec<Effect>) {
    let mut lc = lifecycle();
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers { list, now: 100 * S });
    let fx = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: p.uid.clone(),
        result: Ok(()),
    }));
    (lc, fx)
}

/// Brings the debugger up to its Create effect and returns the share it was given.
fn create_share(lc: &mut PodLifecycle, fx: &[Effect]) -> Option<NamespaceShare> {
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::EnsureImage { key, .. } if key.1 == "debugger")),
        "{fx:?}"
    );
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: debugger_key(),
        pulled: false,
    }));
    fx.iter().find_map(|e| match e {
        Effect::Create {
            key,
            share,
            restart_count: 0,
            ..
        } if key.1 == "debugger" => Some(share.clone().unwrap()),
        _ => None,
    })
}

/// The share the debugger gets in a pod whose `main` (m1) and `sidecar` (s1) run.
fn share_for(target: Option<&str>, host_network: bool) -> Option<NamespaceShare> {
    let p = debugged_pod(target, host_network);
    let list = vec![
        snapshot(&p, "main", "m1", running(90 * S)),
        snapshot(&p, "sidecar", "s1", running(90 * S)),
    ];
    let (mut lc, fx) = adopted(&p, list);
    create_share(&mut lc, &fx)
}

#[test]
fn debugger_joins_the_targets_pid_and_network_namespaces() {
    assert_eq!(
        share_for(Some("sidecar"), false),
        Some(NamespaceShare {
            pid_of: Some("s1".into()),
            network_of: Some("s1".into()),
        })
    );
}

#[test]
fn without_target_it_joins_the_first_containers_network_only() {
    assert_eq!(
        share_for(None, false),
        Some(NamespaceShare {
            pid_of: None,
            network_of: Some("m1".into()),
        })
    );
}

#[test]
fn host_network_pod_keeps_the_debugger_on_the_host_network() {
    assert_eq!(
        share_for(Some("main"), true),
        Some(NamespaceShare {
            pid_of: Some("m1".into()),
            network_of: None,
        })
    );
}

#[test]
fn debugger_waits_while_its_target_is_not_running() {
    let p = debugged_pod(Some("sidecar"), false);
    let list = vec![
        snapshot(&p, "main", "m1", running(90 * S)),
        snapshot(
            &p,
            "sidecar",
            "s1",
            RunState::Exited {
                exit_code: 1,
                started_at: Some(80 * S),
                finished_at: Some(99 * S),
                oom_killed: false,
                error: None,
            },
        ),
    ];
    let (mut lc, fx) = adopted(&p, list);
    assert!(!fx.iter().any(for_debugger), "{fx:?}");
    let fx = lc.handle(Input::Tick { now: 101 * S });
    assert!(!fx.iter().any(for_debugger), "{fx:?}");
    let status = lc.full_status().pop().unwrap();
    assert_eq!(status.ephemeral_containers.len(), 1);
    assert_eq!(
        status.ephemeral_containers[0].state,
        ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        }
    );
}

#[test]
fn debugger_is_started_once_reported_and_never_restarted() {
    let p = debugged_pod(Some("main"), false);
    let main = snapshot(&p, "main", "m1", running(90 * S));
    let sidecar = snapshot(&p, "sidecar", "s1", running(90 * S));
    let (mut lc, fx) = adopted(&p, vec![main.clone(), sidecar.clone()]);
    assert!(create_share(&mut lc, &fx).is_some());
    let fx = lc.handle(Input::Done(Outcome::Created {
        key: debugger_key(),
        id: "d1".into(),
    }));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Start { id, .. } if id == "d1")),
        "{fx:?}"
    );
    lc.handle(Input::Done(Outcome::Started {
        key: debugger_key(),
        id: "d1".into(),
    }));
    let fx = lc.handle(Input::Containers {
        list: vec![
            main.clone(),
            sidecar.clone(),
            snapshot(&p, "debugger", "d1", running(103 * S)),
        ],
        now: 104 * S,
    });
    let status = last_report(&fx).unwrap();
    assert_eq!(status.phase, PodPhase::Running);
    assert_eq!(status.containers.len(), 2, "ephemeral is reported apart");
    let debugger = &status.ephemeral_containers[0];
    assert_eq!(debugger.name, "debugger");
    assert_eq!(
        debugger.state,
        ContainerState::Running {
            started_at: 103 * S
        }
    );
    assert!(!debugger.ready, "the kubelet never marks ephemeral ready");
    assert_eq!(debugger.container_id.as_deref(), Some("docker://d1"));

    // It exits with an error under restartPolicy Always: it stays terminated.
    let done = snapshot(
        &p,
        "debugger",
        "d1",
        RunState::Exited {
            exit_code: 2,
            started_at: Some(103 * S),
            finished_at: Some(110 * S),
            oom_killed: false,
            error: None,
        },
    );
    let mut all = Vec::new();
    for now in [111, 200, 900] {
        all.extend(lc.handle(Input::Containers {
            list: vec![main.clone(), sidecar.clone(), done.clone()],
            now: now * S,
        }));
    }
    assert!(!all.iter().any(for_debugger), "not restarted: {all:?}");
    let status = lc.full_status().pop().unwrap();
    let debugger = &status.ephemeral_containers[0];
    assert!(
        matches!(
            &debugger.state,
            ContainerState::Terminated { exit_code: 2, reason, .. } if reason == "Error"
        ),
        "{debugger:?}"
    );
    assert_eq!(debugger.restart_count, 0);
    assert_eq!(status.phase, PodPhase::Running);

    // Removed behind the agent's back: not brought up again either.
    let fx = lc.handle(Input::Containers {
        list: vec![main, sidecar],
        now: 901 * S,
    });
    assert!(!fx.iter().any(for_debugger), "not recreated: {fx:?}");
}

#[test]
fn deleting_the_pod_stops_the_debugger_with_it() {
    let mut p = debugged_pod(Some("main"), false);
    let list = vec![
        snapshot(&p, "main", "m1", running(90 * S)),
        snapshot(&p, "sidecar", "s1", running(90 * S)),
        snapshot(&p, "debugger", "d1", running(95 * S)),
    ];
    let (mut lc, _) = adopted(&p, list);
    p.deletion_grace_period_seconds = Some(3);
    let fx = lc.handle(Input::Desired(DesiredSet {
        generation: 2,
        pods: vec![p.clone()],
    }));
    let stopped: Vec<&str> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Stop { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert!(stopped.contains(&"d1"), "{fx:?}");
    assert_eq!(stopped.len(), 3, "{fx:?}");
}

#[test]
fn a_running_debugger_is_adopted_not_recreated() {
    let p = debugged_pod(Some("main"), false);
    let list = vec![
        snapshot(&p, "main", "m1", running(90 * S)),
        snapshot(&p, "sidecar", "s1", running(90 * S)),
        snapshot(&p, "debugger", "d1", running(95 * S)),
    ];
    let (lc, fx) = adopted(&p, list);
    assert!(!fx.iter().any(for_debugger), "{fx:?}");
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Stop { .. })),
        "{fx:?}"
    );
    let status = lc.full_status().pop().unwrap();
    assert!(matches!(
        status.ephemeral_containers[0].state,
        ContainerState::Running { .. }
    ));
}
