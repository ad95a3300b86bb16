use edge_protocol::{
    ContainerSpec, ContainerState, DesiredSet, PodPhase, PodSpec, PodStatus, RestartPolicy,
};

use super::super::{Effect, Input, Outcome, PodLifecycle, spec_hash};
use super::{InitProgress, restart_policy_of};
use crate::config::LifecycleTimings;
use crate::container_labels::ContainerIdentity;
use crate::container_runtime::{ContainerSnapshot, RunState};

const UID: &str = "u1";

fn container(name: &str, sidecar: bool) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: format!("img-{name}:1"),
        restart_policy: sidecar.then_some(RestartPolicy::Always),
        ..Default::default()
    }
}

/// Init containers `init` (name, sidecar?) before one container `app`.
fn pod(policy: RestartPolicy, init: &[(&str, bool)]) -> PodSpec {
    PodSpec {
        uid: UID.into(),
        namespace: "ns".into(),
        name: "p".into(),
        containers: vec![container("app", false)],
        init_containers: init.iter().map(|(n, s)| container(n, *s)).collect(),
        restart_policy: policy,
        termination_grace_period_seconds: 5,
        host_network: true,
        ..Default::default()
    }
}

fn snap(p: &PodSpec, name: &str, restart: u32, state: RunState) -> ContainerSnapshot {
    ContainerSnapshot {
        id: format!("{name}-{restart}"),
        identity: ContainerIdentity {
            device: "d".into(),
            pod_uid: UID.into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            container_name: name.into(),
            restart_count: restart,
            spec_hash: p.container(name).map(spec_hash).unwrap_or_default(),
            grace_period_seconds: 5,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        },
        state,
        image_id: "sha".into(),
        ip_address: None,
    }
}

fn running() -> RunState {
    RunState::Running { started_at: 1_000 }
}

fn exited(code: i32) -> RunState {
    RunState::Exited {
        exit_code: code,
        started_at: Some(1_000),
        finished_at: Some(2_000),
        oom_killed: false,
        error: None,
    }
}

/// The pod desired, volumes ready, containers `list` found at `now`; all effects.
fn start(p: &PodSpec, list: Vec<ContainerSnapshot>, now: u64) -> (PodLifecycle, Vec<Effect>) {
    let mut lc = PodLifecycle::new(LifecycleTimings::default(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    let mut fx = lc.handle(Input::Containers { list, now });
    fx.extend(lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: UID.into(),
        result: Ok(()),
    })));
    (lc, fx)
}

fn pulled(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::EnsureImage { key, .. } => Some(key.1.clone()),
            _ => None,
        })
        .collect()
}

fn stopped(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Stop { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn status(lc: &PodLifecycle) -> PodStatus {
    lc.full_status().remove(0)
}

fn waiting(s: &edge_protocol::ContainerStatus) -> Option<&str> {
    match &s.state {
        ContainerState::Waiting { reason, .. } => Some(reason),
        _ => None,
    }
}

#[test]
fn restart_policies_of_init_containers_and_sidecars() {
    let p = pod(RestartPolicy::Always, &[("init", false), ("side", true)]);
    assert_eq!(restart_policy_of(&p, "init"), RestartPolicy::OnFailure);
    assert_eq!(restart_policy_of(&p, "side"), RestartPolicy::Always);
    assert_eq!(restart_policy_of(&p, "app"), RestartPolicy::Always);
    let never = pod(RestartPolicy::Never, &[("init", false), ("side", true)]);
    assert_eq!(restart_policy_of(&never, "init"), RestartPolicy::Never);
    assert_eq!(restart_policy_of(&never, "side"), RestartPolicy::Always);
    assert_eq!(restart_policy_of(&never, "app"), RestartPolicy::Never);
}

#[test]
fn init_containers_run_one_at_a_time_in_order_before_the_containers() {
    let p = pod(
        RestartPolicy::Always,
        &[("first", false), ("second", false)],
    );
    let (lc, fx) = start(&p, vec![], 10);
    assert_eq!(pulled(&fx), vec!["first"]);
    let s = status(&lc);
    assert_eq!(s.phase, PodPhase::Pending);
    assert_eq!(s.init_containers.len(), 2);
    assert!(
        s.init_containers
            .iter()
            .all(|c| waiting(c) == Some("PodInitializing"))
    );
    assert_eq!(waiting(&s.containers[0]), Some("PodInitializing"));

    // The first still runs: nothing else starts.
    let (_, fx) = start(&p, vec![snap(&p, "first", 0, running())], 10);
    assert!(pulled(&fx).is_empty(), "{fx:?}");

    let (lc, fx) = start(&p, vec![snap(&p, "first", 0, exited(0))], 10);
    assert_eq!(pulled(&fx), vec!["second"]);
    assert_eq!(lc.init_progress(&p), InitProgress::Waiting { index: 1 });
    assert!(
        status(&lc).init_containers[0].ready,
        "completed counts as ready"
    );

    let done = vec![
        snap(&p, "first", 0, exited(0)),
        snap(&p, "second", 0, exited(0)),
    ];
    let (lc, fx) = start(&p, done, 10);
    assert_eq!(pulled(&fx), vec!["app"]);
    assert_eq!(lc.init_progress(&p), InitProgress::Done);
}

#[test]
fn a_failed_init_container_fails_a_never_pod_and_nothing_else_starts() {
    let p = pod(RestartPolicy::Never, &[("first", false), ("second", false)]);
    let (lc, fx) = start(&p, vec![snap(&p, "first", 0, exited(3))], 10);
    assert!(pulled(&fx).is_empty(), "{fx:?}");
    let s = status(&lc);
    assert_eq!(s.phase, PodPhase::Failed);
    match &s.init_containers[0].state {
        ContainerState::Terminated {
            exit_code, reason, ..
        } => assert_eq!((*exit_code, reason.as_str()), (3, "Error")),
        other => panic!("{other:?}"),
    }
    assert_eq!(waiting(&s.containers[0]), Some("PodInitializing"));
}

#[test]
fn a_failed_init_container_is_retried_with_back_off_under_always() {
    let p = pod(RestartPolicy::Always, &[("first", false)]);
    // Failed once (restart 1 exited): in back-off, reported as CrashLoopBackOff.
    let list = vec![
        snap(&p, "first", 1, exited(1)),
        snap(&p, "first", 0, exited(1)),
    ];
    let (mut lc, fx) = start(&p, list, 2_500);
    assert!(pulled(&fx).is_empty(), "in back-off: {fx:?}");
    let s = status(&lc);
    assert_eq!(s.phase, PodPhase::Pending);
    assert_eq!(waiting(&s.init_containers[0]), Some("CrashLoopBackOff"));
    assert_eq!(s.init_containers[0].restart_count, 1);
    // Once the back-off is over, it runs again; the container still waits.
    let fx = lc.handle(Input::Tick { now: 60_000 });
    assert_eq!(pulled(&fx), vec!["first"]);
}

#[test]
fn a_sidecar_starts_in_its_turn_keeps_running_and_is_restarted() {
    let p = pod(RestartPolicy::Never, &[("side", true), ("setup", false)]);
    let (_, fx) = start(&p, vec![], 10);
    assert_eq!(pulled(&fx), vec!["side"]);
    // Running (no startup probe): the next init container starts.
    let (lc, fx) = start(&p, vec![snap(&p, "side", 0, running())], 10);
    assert_eq!(pulled(&fx), vec!["setup"]);
    assert_eq!(lc.init_progress(&p), InitProgress::Waiting { index: 1 });
    // Everything done: the container starts beside the running sidecar.
    let list = vec![
        snap(&p, "side", 0, running()),
        snap(&p, "setup", 0, exited(0)),
    ];
    let (_, fx) = start(&p, list, 10);
    assert_eq!(pulled(&fx), vec!["app"]);
    // A sidecar that exits is restarted even under restartPolicy Never.
    let list = vec![
        snap(&p, "side", 0, exited(0)),
        snap(&p, "setup", 0, exited(0)),
        snap(&p, "app", 0, running()),
    ];
    let (lc, fx) = start(&p, list, 5_000);
    assert_eq!(pulled(&fx), vec!["side"]);
    assert_eq!(
        status(&lc).phase,
        PodPhase::Running,
        "the pod stays initialized"
    );
}

#[test]
fn sidecars_do_not_block_completion_and_stop_after_the_containers() {
    let p = pod(RestartPolicy::Never, &[("side-a", true), ("side-b", true)]);
    let list = vec![
        snap(&p, "side-a", 0, running()),
        snap(&p, "side-b", 0, running()),
        snap(&p, "app", 0, exited(0)),
    ];
    let (lc, fx) = start(&p, list, 10);
    // The last sidecar first.
    assert_eq!(stopped(&fx), vec!["side-b-0"]);
    assert_eq!(status(&lc).phase, PodPhase::Succeeded);
    let list = vec![
        snap(&p, "side-a", 0, running()),
        snap(&p, "side-b", 0, exited(143)),
        snap(&p, "app", 0, exited(0)),
    ];
    let (lc, fx) = start(&p, list, 10);
    assert_eq!(stopped(&fx), vec!["side-a-0"]);
    assert!(pulled(&fx).is_empty(), "no sidecar restarts: {fx:?}");
    assert_eq!(status(&lc).phase, PodPhase::Succeeded);
}

#[test]
fn at_teardown_sidecars_go_after_the_containers() {
    let mut p = pod(RestartPolicy::Always, &[("side", true)]);
    p.deletion_grace_period_seconds = Some(2);
    let list = vec![
        snap(&p, "side", 0, running()),
        snap(&p, "app", 0, running()),
    ];
    let (_, fx) = start(&p, list, 10);
    assert_eq!(stopped(&fx), vec!["app-0"]);
    let (_, fx) = start(&p, vec![snap(&p, "side", 0, running())], 10);
    assert_eq!(stopped(&fx), vec!["side-0"]);
}

#[test]
fn a_sidecar_stopped_after_completion_is_reported_terminated() {
    let p = pod(RestartPolicy::Never, &[("side", true)]);
    let list = vec![
        snap(&p, "side", 0, exited(0)),
        snap(&p, "app", 0, exited(0)),
    ];
    let (lc, fx) = start(&p, list, 5_000);
    assert!(pulled(&fx).is_empty(), "{fx:?}");
    let s = status(&lc);
    assert_eq!(s.phase, PodPhase::Succeeded);
    assert!(matches!(
        s.init_containers[0].state,
        ContainerState::Terminated { exit_code: 0, .. }
    ));
}
