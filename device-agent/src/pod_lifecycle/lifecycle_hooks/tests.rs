#![allow(clippy::unwrap_used)]
use std::time::Duration;

use edge_protocol::{
    ContainerSpec, ContainerState, DesiredSet, Lifecycle, LifecycleHandler, PodSpec, Probe,
    ProbeHandler, RestartPolicy,
};

use super::super::{Effect, HookError, HookKind, Input, Outcome, PodLifecycle, spec_hash};
use crate::config::LifecycleTimings;
use crate::container_labels::ContainerIdentity;
use crate::container_runtime::{ContainerSnapshot, RunState};

pub(in crate::pod_lifecycle) const UID: &str = "u1";

fn touch() -> LifecycleHandler {
    LifecycleHandler::Exec {
        command: vec!["touch".into(), "/tmp/up".into()],
    }
}

fn quit() -> LifecycleHandler {
    LifecycleHandler::HttpGet {
        host: None,
        port: 8080,
        path: "/quit".into(),
        scheme: "HTTP".into(),
        headers: vec![],
    }
}

pub(in crate::pod_lifecycle) fn pod(
    post_start: Option<LifecycleHandler>,
    pre_stop: Option<LifecycleHandler>,
) -> PodSpec {
    PodSpec {
        uid: UID.into(),
        namespace: "ns".into(),
        name: "p".into(),
        containers: vec![ContainerSpec {
            name: "app".into(),
            image: "app:1".into(),
            readiness_probe: Some(Probe {
                handler: ProbeHandler::Exec {
                    command: vec!["true".into()],
                },
                initial_delay_seconds: 0,
                period_seconds: 1,
                timeout_seconds: 1,
                success_threshold: 1,
                failure_threshold: 1,
            }),
            lifecycle: Some(Lifecycle {
                post_start,
                pre_stop,
            }),
            ..Default::default()
        }],
        restart_policy: RestartPolicy::Never,
        termination_grace_period_seconds: 30,
        host_network: true,
        ..Default::default()
    }
}

pub(in crate::pod_lifecycle) fn snap(
    p: &PodSpec,
    id: &str,
    restart: u32,
    state: RunState,
) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.into(),
        identity: ContainerIdentity {
            device: "d".into(),
            pod_uid: UID.into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            container_name: "app".into(),
            restart_count: restart,
            spec_hash: spec_hash(&p.containers[0]),
            grace_period_seconds: 30,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        },
        state,
        image_id: "sha".into(),
        ip_address: None,
    }
}

pub(in crate::pod_lifecycle) fn running() -> RunState {
    RunState::Running { started_at: 1 }
}

pub(in crate::pod_lifecycle) fn exited(code: i32) -> RunState {
    RunState::Exited {
        exit_code: code,
        started_at: Some(1),
        finished_at: Some(2),
        oom_killed: false,
        error: None,
    }
}

fn desired(lc: &mut PodLifecycle, generation: u64, p: PodSpec) -> Vec<Effect> {
    lc.handle(Input::Desired(DesiredSet {
        generation,
        pods: vec![p],
    }))
}

/// The pod desired, nothing listed yet, its volumes ready.
fn accepted(p: &PodSpec) -> PodLifecycle {
    let mut lc = PodLifecycle::new(LifecycleTimings::default(), Some("192.168.1.9".into()));
    desired(&mut lc, 1, p.clone());
    lc.handle(Input::Containers {
        list: vec![],
        now: 10,
    });
    lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: UID.into(),
        result: Ok(()),
    }));
    lc
}

/// [`accepted`], then `app` brought up as `c1`.
pub(in crate::pod_lifecycle) fn started(p: &PodSpec) -> (PodLifecycle, Vec<Effect>) {
    let mut lc = accepted(p);
    let fx = bring_up(&mut lc, "app", "c1");
    (lc, fx)
}

/// Container `name` of the pod: image there, created as `id`, started.
fn bring_up(lc: &mut PodLifecycle, name: &str, id: &str) -> Vec<Effect> {
    let key = (UID.to_owned(), name.to_owned());
    lc.handle(Input::Done(Outcome::ImageReady {
        key: key.clone(),
        pulled: false,
    }));
    lc.handle(Input::Done(Outcome::Created {
        key: key.clone(),
        id: id.into(),
    }));
    lc.handle(Input::Done(Outcome::Started { key, id: id.into() }))
}

fn hooks(fx: &[Effect]) -> Vec<(HookKind, LifecycleHandler, String, Option<Duration>)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::RunHook {
                kind,
                handler,
                target_ip,
                timeout,
                ..
            } => Some((*kind, handler.clone(), target_ip.clone(), *timeout)),
            _ => None,
        })
        .collect()
}

fn stops(fx: &[Effect]) -> Vec<(String, Duration)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Stop { id, grace } => Some((id.clone(), *grace)),
            _ => None,
        })
        .collect()
}

fn event_reasons(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Events(events) => Some(events.iter().map(|e| e.reason.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

fn event_message(fx: &[Effect], reason: &str) -> Option<String> {
    fx.iter().find_map(|e| match e {
        Effect::Events(events) => events
            .iter()
            .find(|e| e.reason == reason)
            .map(|e| e.message.clone()),
        _ => None,
    })
}

pub(in crate::pod_lifecycle) fn app_state(
    lc: &PodLifecycle,
) -> (ContainerState, Option<ContainerState>, bool) {
    let status = lc.full_status().remove(0);
    let c = status.containers[0].clone();
    (c.state, c.last_state, c.ready)
}

/// The preStop hook of [`quit`], bounded by the pod's grace period.
fn quit_within_grace() -> Vec<(HookKind, LifecycleHandler, String, Option<Duration>)> {
    vec![(
        HookKind::PreStop,
        quit(),
        "127.0.0.1".to_owned(),
        Some(Duration::from_secs(30)),
    )]
}

/// A listing with `c1` running.
fn list_running(lc: &mut PodLifecycle, p: &PodSpec, now: u64) -> Vec<Effect> {
    lc.handle(Input::Containers {
        list: vec![snap(p, "c1", 0, running())],
        now,
    })
}

/// The gateway asks for the pod to go, with a 30 s grace period.
fn delete(lc: &mut PodLifecycle, p: &PodSpec) -> Vec<Effect> {
    let mut deleting = p.clone();
    deleting.deletion_grace_period_seconds = Some(30);
    desired(lc, 2, deleting)
}

#[test]
fn post_start_runs_after_the_start_and_the_container_is_not_started_until_it_returns() {
    let p = pod(Some(touch()), None);
    let (mut lc, fx) = started(&p);
    assert_eq!(
        hooks(&fx),
        [(HookKind::PostStart, touch(), "127.0.0.1".to_owned(), None)]
    );
    let fx = lc.handle(Input::Containers {
        list: vec![snap(&p, "c1", 0, running())],
        now: 20,
    });
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::WatchProbes { .. })),
        "no probes during postStart: {fx:?}"
    );
    let (state, _, ready) = app_state(&lc);
    assert!(
        matches!(&state, ContainerState::Waiting { reason, .. } if reason == "ContainerCreating"),
        "{state:?}"
    );
    assert!(!ready);
    let fx = lc.handle(Input::Done(Outcome::HookDone {
        container_id: "c1".into(),
        kind: HookKind::PostStart,
        elapsed: Duration::from_millis(300),
        result: Ok(()),
    }));
    assert!(
        fx.iter().any(|e| matches!(e, Effect::WatchProbes { .. })),
        "{fx:?}"
    );
    assert!(stops(&fx).is_empty());
    assert!(matches!(app_state(&lc).0, ContainerState::Running { .. }));
}

#[test]
fn a_failed_post_start_is_an_event_and_kills_the_container_through_its_pre_stop() {
    let mut p = pod(Some(touch()), Some(quit()));
    // no readiness probe: it would be ready as soon as it counts as started
    p.containers[0].readiness_probe = None;
    let (mut lc, _) = started(&p);
    list_running(&mut lc, &p, 20);
    let fx = lc.handle(Input::Done(Outcome::HookDone {
        container_id: "c1".into(),
        kind: HookKind::PostStart,
        elapsed: Duration::from_millis(10),
        result: Err(HookError::ExitCode {
            command: "touch /tmp/up".into(),
            code: 1,
            output: "read-only file system".into(),
        }),
    }));
    assert!(
        event_reasons(&fx).contains(&"FailedPostStartHook".to_owned()),
        "{fx:?}"
    );
    let message = event_message(&fx, "FailedPostStartHook").unwrap();
    assert!(
        message.starts_with("Exec lifecycle hook ([touch /tmp/up]) for Container \"app\" in Pod \"p_ns(u1)\" failed - error: command 'touch /tmp/up' exited with 1")
            && message.ends_with("message: \"read-only file system\""),
        "{message}"
    );
    assert_eq!(
        event_message(&fx, "Killing").as_deref(),
        Some("FailedPostStartHook")
    );
    // the kill runs the preStop hook first, within the pod's grace period
    assert_eq!(hooks(&fx), quit_within_grace());
    assert!(stops(&fx).is_empty());
    // still running while it is killed, but never started nor ready
    lc.handle(Input::Containers {
        list: vec![snap(&p, "c1", 0, running())],
        now: 30,
    });
    let (state, _, ready) = app_state(&lc);
    assert!(
        !ready && !matches!(state, ContainerState::Running { .. }),
        "{state:?}"
    );
}

#[test]
fn pre_stop_runs_before_the_stop_signal_and_leaves_the_rest_of_the_grace_period() {
    let p = pod(None, Some(quit()));
    let (mut lc, _) = started(&p);
    list_running(&mut lc, &p, 20);
    let fx = delete(&mut lc, &p);
    assert_eq!(hooks(&fx), quit_within_grace());
    assert!(stops(&fx).is_empty(), "no signal before preStop: {fx:?}");
    // a listing meanwhile does not start the hook (or a stop) again
    let fx = lc.handle(Input::Containers {
        list: vec![snap(&p, "c1", 0, running())],
        now: 25,
    });
    assert!(hooks(&fx).is_empty() && stops(&fx).is_empty(), "{fx:?}");
    let fx = lc.handle(Input::Done(Outcome::HookDone {
        container_id: "c1".into(),
        kind: HookKind::PreStop,
        elapsed: Duration::from_secs(10),
        result: Err(HookError::Http("connection refused".into())),
    }));
    // the kubelet's event leaves the hook's output out
    assert_eq!(
        event_message(&fx, "FailedPreStopHook").as_deref(),
        Some("PreStopHook failed")
    );
    assert_eq!(stops(&fx), [("c1".to_owned(), Duration::from_secs(20))]);
}

#[test]
fn a_pre_stop_that_used_the_grace_period_leaves_the_kubelets_two_seconds() {
    let p = pod(None, Some(LifecycleHandler::Sleep { seconds: 60 }));
    let (mut lc, _) = started(&p);
    list_running(&mut lc, &p, 20);
    delete(&mut lc, &p);
    let fx = lc.handle(Input::Done(Outcome::HookDone {
        container_id: "c1".into(),
        kind: HookKind::PreStop,
        elapsed: Duration::from_secs(30),
        result: Err(HookError::TimedOut(Duration::from_secs(30))),
    }));
    assert_eq!(stops(&fx), [("c1".to_owned(), Duration::from_secs(2))]);
    assert!(
        event_reasons(&fx).is_empty(),
        "past the grace period: no event"
    );
}

#[test]
fn a_container_without_hooks_is_stopped_at_once() {
    let p = pod(None, None);
    let (mut lc, fx) = started(&p);
    assert!(hooks(&fx).is_empty());
    list_running(&mut lc, &p, 20);
    let fx = delete(&mut lc, &p);
    assert_eq!(stops(&fx), [("c1".to_owned(), Duration::from_secs(30))]);
}

#[test]
fn the_next_container_waits_for_a_sidecars_post_start() {
    let mut p = pod(None, None);
    let mut sidecar = p.containers[0].clone();
    sidecar.name = "side".into();
    sidecar.readiness_probe = None;
    sidecar.restart_policy = Some(RestartPolicy::Always);
    sidecar.lifecycle = Some(Lifecycle {
        post_start: Some(touch()),
        pre_stop: None,
    });
    p.init_containers = vec![sidecar.clone()];
    let mut lc = accepted(&p);
    let fx = bring_up(&mut lc, "side", "s1");
    assert_eq!(hooks(&fx).len(), 1, "{fx:?}");
    let mut side = snap(&p, "s1", 0, running());
    side.identity.container_name = "side".into();
    side.identity.spec_hash = spec_hash(&sidecar);
    let brings_up_app = |fx: &[Effect]| {
        fx.iter().any(|e| {
            matches!(e, Effect::EnsureImage { key, .. } | Effect::Create { key, .. } if key.1 == "app")
        })
    };
    let fx = lc.handle(Input::Containers {
        list: vec![side.clone()],
        now: 20,
    });
    assert!(
        !brings_up_app(&fx),
        "the app waits for the sidecar's postStart: {fx:?}"
    );
    let fx = lc.handle(Input::Done(Outcome::HookDone {
        container_id: "s1".into(),
        kind: HookKind::PostStart,
        elapsed: Duration::from_millis(5),
        result: Ok(()),
    }));
    assert!(brings_up_app(&fx), "{fx:?}");
}
