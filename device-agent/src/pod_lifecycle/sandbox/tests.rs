use edge_protocol::{ContainerSpec, DesiredSet, PodSpec, RestartPolicy};

use super::super::{Effect, Input, Outcome, PodLifecycle, SandboxRole};
use crate::config::{LifecycleTimings, SandboxSettings};
use crate::container_labels::{ContainerIdentity, SANDBOX_CONTAINER_NAME};
use crate::container_runtime::{ContainerSnapshot, RunState};

const UID: &str = "u1";

fn pod(host_network: bool) -> PodSpec {
    let c = |name: &str| ContainerSpec {
        name: name.into(),
        image: "app:1".into(),
        ..Default::default()
    };
    PodSpec {
        uid: UID.into(),
        namespace: "ns".into(),
        name: "p".into(),
        containers: vec![c("a"), c("b")],
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 5,
        host_network,
        ..Default::default()
    }
}

fn snap(name: &str, id: &str, restart: u32, sandbox: &str, state: RunState) -> ContainerSnapshot {
    let lc = PodLifecycle::new(LifecycleTimings::default(), None);
    let p = pod(false);
    let hash = if name == SANDBOX_CONTAINER_NAME {
        lc.with_sandbox(settings())
            .sandbox_spec(&p)
            .map(|c| super::super::spec_hash(&c))
            .unwrap_or_default()
    } else {
        p.containers
            .iter()
            .find(|c| c.name == name)
            .map(super::super::spec_hash)
            .unwrap_or_default()
    };
    ContainerSnapshot {
        id: id.into(),
        identity: ContainerIdentity {
            device: "d".into(),
            pod_uid: UID.into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            container_name: name.into(),
            restart_count: restart,
            spec_hash: hash,
            grace_period_seconds: 5,
            sandbox_id: sandbox.into(),
            gpu_devices: Vec::new(),
        },
        state,
        image_id: "sha".into(),
        ip_address: (name == SANDBOX_CONTAINER_NAME).then(|| "10.88.0.7".to_owned()),
    }
}

fn running() -> RunState {
    RunState::Running { started_at: 1 }
}

fn dead() -> RunState {
    RunState::Exited {
        exit_code: 137,
        started_at: Some(1),
        finished_at: Some(2),
        oom_killed: false,
        error: None,
    }
}

fn settings() -> SandboxSettings {
    SandboxSettings {
        image: "pause:1".into(),
        command: vec![],
    }
}

/// A lifecycle with the pod desired and its volumes ready, at listing `list`.
fn with_pod(p: PodSpec, list: Vec<ContainerSnapshot>) -> (PodLifecycle, Vec<Effect>) {
    let mut lc = PodLifecycle::new(LifecycleTimings::default(), Some("192.168.1.9".into()))
        .with_sandbox(settings());
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p],
    }));
    let mut fx = lc.handle(Input::Containers { list, now: 10 });
    fx.extend(lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: UID.into(),
        result: Ok(()),
    })));
    (lc, fx)
}

fn creates(fx: &[Effect]) -> Vec<(String, SandboxRole)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Create { key, sandbox, .. } => Some((key.1.clone(), sandbox.clone())),
            _ => None,
        })
        .collect()
}

fn stops(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Stop { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_infra_container_comes_first_and_the_containers_join_it() {
    let (mut lc, fx) = with_pod(pod(false), vec![]);
    // Only the infra image is asked for: the containers wait for the sandbox.
    let images: Vec<String> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::EnsureImage { key, image, .. } => Some(format!("{}={image}", key.1)),
            _ => None,
        })
        .collect();
    assert_eq!(images, vec!["POD=pause:1".to_owned()]);
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), SANDBOX_CONTAINER_NAME.into()),
        pulled: false,
    }));
    assert_eq!(
        creates(&fx),
        vec![("POD".to_owned(), SandboxRole::Infra(settings()))]
    );
    // The sandbox runs: the containers are created in it, and the pod IP is its.
    let fx = lc.handle(Input::Containers {
        list: vec![snap("POD", "infra1", 0, "", running())],
        now: 20,
    });
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::EnsureImage { key, .. } if key.1 == "a"))
    );
    for c in ["a", "b"] {
        lc.handle(Input::Done(Outcome::ImageReady {
            key: (UID.into(), c.into()),
            pulled: false,
        }));
    }
    let list = vec![
        snap("POD", "infra1", 0, "", running()),
        snap("a", "a1", 0, "infra1", running()),
        snap("b", "b1", 0, "infra1", running()),
    ];
    let fx = lc.handle(Input::Containers { list, now: 30 });
    let status = lc.full_status().remove(0);
    assert_eq!(status.pod_ip.as_deref(), Some("10.88.0.7"));
    assert!(stops(&fx).is_empty());
    assert_eq!(
        status.containers.len(),
        2,
        "the infra container is not reported"
    );
}

#[test]
fn joined_containers_are_created_with_the_infra_id() {
    let (mut lc, _) = with_pod(pod(false), vec![snap("POD", "infra1", 0, "", running())]);
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), "a".into()),
        pulled: false,
    }));
    assert_eq!(
        creates(&fx),
        vec![("a".to_owned(), SandboxRole::Join("infra1".into()))]
    );
}

#[test]
fn a_dead_infra_container_stops_the_pod_and_brings_it_up_in_a_new_one() {
    let list = vec![
        snap("POD", "infra1", 0, "", dead()),
        snap("a", "a1", 0, "infra1", running()),
        snap("b", "b1", 0, "infra1", running()),
    ];
    let (mut lc, fx) = with_pod(pod(false), list);
    let mut stopped = stops(&fx);
    stopped.sort();
    assert_eq!(stopped, vec!["a1".to_owned(), "b1".to_owned()]);
    // A new infra container (restart 1) while the old containers wait.
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), SANDBOX_CONTAINER_NAME.into()),
        pulled: false,
    }));
    assert_eq!(
        creates(&fx),
        vec![("POD".to_owned(), SandboxRole::Infra(settings()))]
    );
    // Once it runs, a container still in the old sandbox is replaced.
    let list = vec![
        snap("POD", "infra2", 1, "", running()),
        snap("POD", "infra1", 0, "", dead()),
        snap("a", "a1", 0, "infra1", dead()),
        snap("b", "b1", 0, "infra1", dead()),
    ];
    let fx = lc.handle(Input::Containers { list, now: 40 });
    let images: Vec<&str> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::EnsureImage { key, .. } => Some(key.1.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(images, vec!["a", "b"]);
}

#[test]
fn a_restarted_container_keeps_the_running_sandbox() {
    let list = vec![
        snap("POD", "infra1", 0, "", running()),
        snap("a", "a1", 0, "infra1", dead()),
        snap("b", "b1", 0, "infra1", running()),
    ];
    let (mut lc, fx) = with_pod(pod(false), list);
    assert!(stops(&fx).is_empty(), "{fx:?}");
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), "a".into()),
        pulled: false,
    }));
    assert_eq!(
        creates(&fx),
        vec![("a".to_owned(), SandboxRole::Join("infra1".into()))]
    );
}

#[test]
fn the_infra_container_is_torn_down_last() {
    let mut deleting = pod(false);
    deleting.deletion_grace_period_seconds = Some(3);
    let list = vec![
        snap("POD", "infra1", 0, "", running()),
        snap("a", "a1", 0, "infra1", running()),
    ];
    let (mut lc, fx) = with_pod(deleting, list.clone());
    let mut all = stops(&fx);
    let fx = lc.handle(Input::Tick { now: 11 });
    all.extend(stops(&fx));
    assert_eq!(all, vec!["a1".to_owned()]);
    let fx = lc.handle(Input::Containers {
        list: vec![snap("POD", "infra1", 0, "", running())],
        now: 20,
    });
    assert_eq!(stops(&fx), vec!["infra1".to_owned()]);
}

/// The pod leaves the desired set (a second, empty one).
fn leave_desired_set(lc: &mut PodLifecycle) {
    lc.handle(Input::Desired(DesiredSet {
        generation: 2,
        pods: vec![],
    }));
}

/// A container asked for joins the infra container: the pod going away meanwhile (its
/// create in flight, then created but not listed yet) must not take the infra container
/// away under it.
#[test]
fn the_infra_container_outlives_a_create_on_its_way() {
    let infra = || snap("POD", "infra1", 0, "", running());
    let (mut lc, _) = with_pod(pod(false), vec![infra()]);
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), "a".into()),
        pulled: false,
    }));
    assert_eq!(creates(&fx).len(), 1);
    // The pod leaves the desired set while "a" is being created.
    leave_desired_set(&mut lc);
    let fx = lc.handle(Input::Containers {
        list: vec![infra()],
        now: 20,
    });
    assert!(stops(&fx).is_empty(), "create in flight: {fx:?}");
    let fx = lc.handle(Input::Done(Outcome::Created {
        key: (UID.into(), "a".into()),
        id: "a1".into(),
    }));
    assert!(stops(&fx).is_empty(), "created, not listed: {fx:?}");
    // A listing taken before the create still lacks it.
    let fx = lc.handle(Input::Containers {
        list: vec![infra()],
        now: 21,
    });
    assert!(stops(&fx).is_empty(), "created, not listed: {fx:?}");
    // Listed: the container goes first, then the infra container.
    let fx = lc.handle(Input::Containers {
        list: vec![infra(), snap("a", "a1", 0, "infra1", RunState::Created)],
        now: 22,
    });
    assert!(stops(&fx).is_empty(), "{fx:?}");
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Remove { id } if id == "a1"))
    );
    let fx = lc.handle(Input::Containers {
        list: vec![infra()],
        now: 23,
    });
    assert_eq!(stops(&fx), vec!["infra1".to_owned()]);
}

/// Old infra containers go like old instances of any container, but not one that a
/// listed container still joins (here the previous instance of "a", kept for
/// `logs --previous`).
#[test]
fn an_old_infra_container_stays_while_a_container_joins_it() {
    let mut a_previous = snap("a", "a0", 0, "infra1", dead());
    a_previous.identity.restart_count = 0;
    let list = vec![
        snap("POD", "infra3", 2, "", running()),
        snap("POD", "infra2", 1, "", dead()),
        snap("POD", "infra1", 0, "", dead()),
        snap("a", "a1", 1, "infra3", running()),
        a_previous,
        snap("b", "b1", 0, "infra3", running()),
    ];
    let (mut lc, fx) = with_pod(pod(false), list.clone());
    let removes = |fx: &[Effect]| -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Remove { id } => Some(id.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(removes(&fx).is_empty(), "{fx:?}");
    // The previous instance of "a" is gone: so is the hold.
    let list: Vec<_> = list.into_iter().filter(|c| c.id != "a0").collect();
    let fx = lc.handle(Input::Containers { list, now: 40 });
    assert_eq!(removes(&fx), vec!["infra1".to_owned()]);
}

/// A created container that never shows up (removed behind the agent's back) holds the
/// infra container no longer than the agent waits for a created container.
#[test]
fn a_created_container_never_listed_stops_holding_the_infra_container() {
    let infra = || snap("POD", "infra1", 0, "", running());
    let (mut lc, _) = with_pod(pod(false), vec![infra()]);
    lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), "a".into()),
        pulled: false,
    }));
    lc.handle(Input::Done(Outcome::Created {
        key: (UID.into(), "a".into()),
        id: "a1".into(),
    }));
    leave_desired_set(&mut lc);
    let fx = lc.handle(Input::Containers {
        list: vec![infra()],
        now: 20,
    });
    assert!(stops(&fx).is_empty(), "{fx:?}");
    let fx = lc.handle(Input::Containers {
        list: vec![infra()],
        now: 10 + 30_000,
    });
    assert_eq!(stops(&fx), vec!["infra1".to_owned()]);
}

#[test]
fn host_network_pods_have_no_infra_container() {
    let (_, fx) = with_pod(pod(true), vec![]);
    assert!(
        fx.iter().all(
            |e| !matches!(e, Effect::EnsureImage { key, .. } if key.1 == SANDBOX_CONTAINER_NAME)
        )
    );
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::EnsureImage { key, .. } if key.1 == "a"))
    );
}

#[test]
fn ephemeral_containers_join_the_infra_network() {
    let mut p = pod(false);
    p.ephemeral_containers = vec![edge_protocol::EphemeralContainerSpec {
        name: "debugger".into(),
        image: "busybox:1".into(),
        target_container_name: Some("a".into()),
        ..Default::default()
    }];
    let list = vec![
        snap("POD", "infra1", 0, "", running()),
        snap("a", "a1", 0, "infra1", running()),
        snap("b", "b1", 0, "infra1", running()),
    ];
    let (mut lc, _) = with_pod(p, list);
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: (UID.into(), "debugger".into()),
        pulled: false,
    }));
    let share = fx
        .iter()
        .find_map(|e| match e {
            Effect::Create { key, share, .. } if key.1 == "debugger" => share.clone(),
            _ => None,
        })
        .expect("the ephemeral container is created");
    assert_eq!(share.network_of.as_deref(), Some("infra1"));
    assert_eq!(share.pid_of.as_deref(), Some("a1"));
}
