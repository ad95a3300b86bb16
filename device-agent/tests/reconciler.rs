//! Unit tests of the pure reconciler (`PodLifecycle`): no I/O, inputs in, effects out.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use edge_agent::config::LifecycleTimings;
use edge_agent::container_labels::ContainerIdentity;
use edge_agent::container_runtime::{ContainerSnapshot, RunState};
use edge_agent::pod_lifecycle::{
    Effect, FailureReason, Input, LogTargetError, Outcome, PodLifecycle, ProbeKind, ProbeReport,
    pod_phase, spec_hash,
};
use edge_agent::pod_volumes::VolumeError;
use edge_protocol::{
    ContainerSpec, ContainerState, ContainerStatus, DesiredSet, PodPhase, PodSpec, PodStatus,
    RestartPolicy,
};

const S: u64 = 1000;

fn timings() -> LifecycleTimings {
    LifecycleTimings {
        sync_interval: Duration::from_secs(1),
        backoff_initial: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        backoff_reset: Duration::from_secs(600),
    }
}

fn pod(uid: &str, policy: RestartPolicy) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        namespace: "default".into(),
        name: format!("pod-{uid}"),
        containers: vec![ContainerSpec {
            name: "main".into(),
            image: "localhost/busybox:test".into(),
            command: vec!["sleep".into(), "1000".into()],
            ..Default::default()
        }],
        restart_policy: policy,
        termination_grace_period_seconds: 5,
        host_network: true,
        ..Default::default()
    }
}

fn key(uid: &str) -> (String, String) {
    (uid.into(), "main".into())
}

fn snapshot(p: &PodSpec, id: &str, restart: u32, state: RunState) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.into(),
        identity: ContainerIdentity {
            device: "dev".into(),
            pod_uid: p.uid.clone(),
            pod_namespace: p.namespace.clone(),
            pod_name: p.name.clone(),
            container_name: "main".into(),
            restart_count: restart,
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

fn exited(code: i32, started: u64, finished: u64) -> RunState {
    RunState::Exited {
        exit_code: code,
        started_at: Some(started),
        finished_at: Some(finished),
        oom_killed: false,
        error: None,
    }
}

fn reports(effects: &[Effect]) -> Vec<PodStatus> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Report(p) => Some(p.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn event_reasons(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Events(ev) => Some(ev.iter().map(|e| e.reason.clone()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn waiting_reason(s: &PodStatus) -> Option<String> {
    match &s.containers[0].state {
        ContainerState::Waiting { reason, .. } => Some(reason.clone()),
        _ => None,
    }
}

fn has<F: Fn(&Effect) -> bool>(effects: &[Effect], f: F) -> bool {
    effects.iter().any(f)
}

/// Runs a new pod up to the Create effect; returns the lifecycle.
fn up_to_create(p: &PodSpec, now: u64) -> PodLifecycle {
    let mut lc = PodLifecycle::new(timings(), Some("10.0.0.5".into()));
    let fx = lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    assert!(
        fx.is_empty(),
        "nothing happens before the first listing: {fx:?}"
    );
    let fx = lc.handle(Input::Containers { list: vec![], now });
    assert!(has(&fx, |e| matches!(e, Effect::PrepareVolumes { .. })));
    let st = reports(&fx);
    assert_eq!(st[0].phase, PodPhase::Pending);
    assert_eq!(waiting_reason(&st[0]).as_deref(), Some("ContainerCreating"));
    let fx = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: p.uid.clone(),
        result: Ok(()),
    }));
    assert!(has(&fx, |e| matches!(e, Effect::EnsureImage { .. })));
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: key(&p.uid),
        pulled: false,
    }));
    assert!(
        has(&fx, |e| matches!(
            e,
            Effect::Create {
                restart_count: 0,
                ..
            }
        )),
        "{fx:?}"
    );
    assert_eq!(event_reasons(&fx), vec!["Pulled"]);
    lc
}

#[test]
fn new_pod_is_pulled_created_started_and_reported_running() {
    let p = pod("u1", RestartPolicy::Always);
    let mut lc = up_to_create(&p, 100 * S);
    let fx = lc.handle(Input::Done(Outcome::Created {
        key: key("u1"),
        id: "c0".into(),
    }));
    assert!(has(
        &fx,
        |e| matches!(e, Effect::Start { id, .. } if id == "c0")
    ));
    assert_eq!(event_reasons(&fx), vec!["Created"]);
    let fx = lc.handle(Input::Done(Outcome::Started {
        key: key("u1"),
        id: "c0".into(),
    }));
    assert_eq!(event_reasons(&fx), vec!["Started"]);
    let running = snapshot(
        &p,
        "c0",
        0,
        RunState::Running {
            started_at: 101 * S,
        },
    );
    let fx = lc.handle(Input::Containers {
        list: vec![running.clone()],
        now: 102 * S,
    });
    let st = reports(&fx);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].phase, PodPhase::Running);
    assert_eq!(st[0].pod_ip.as_deref(), Some("10.0.0.5"), "host network");
    let c = &st[0].containers[0];
    assert!(c.ready);
    assert_eq!(c.container_id.as_deref(), Some("docker://c0"));
    assert_eq!(c.restart_count, 0);
    // Nothing changed: no effects, no duplicate report.
    let fx = lc.handle(Input::Containers {
        list: vec![running],
        now: 103 * S,
    });
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(lc.pods_running(), 1);
}

#[test]
fn crash_loop_backs_off_10s_then_20s() {
    let p = pod("u2", RestartPolicy::Always);
    let mut lc = up_to_create(&p, 0);
    lc.handle(Input::Done(Outcome::Created {
        key: key("u2"),
        id: "c0".into(),
    }));
    lc.handle(Input::Done(Outcome::Started {
        key: key("u2"),
        id: "c0".into(),
    }));
    // First exit: restarted at once.
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, exited(1, S, 2 * S))],
        now: 2 * S,
    });
    assert!(
        has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "{fx:?}"
    );
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: key("u2"),
        pulled: false,
    }));
    assert!(has(&fx, |e| matches!(
        e,
        Effect::Create {
            restart_count: 1,
            ..
        }
    )));
    lc.handle(Input::Done(Outcome::Created {
        key: key("u2"),
        id: "c1".into(),
    }));
    lc.handle(Input::Done(Outcome::Started {
        key: key("u2"),
        id: "c1".into(),
    }));
    // Second exit at 3 s: back-off 10 s.
    let list = vec![
        snapshot(&p, "c1", 1, exited(1, 2 * S, 3 * S)),
        snapshot(&p, "c0", 0, exited(1, S, 2 * S)),
    ];
    let fx = lc.handle(Input::Containers {
        list: list.clone(),
        now: 3 * S,
    });
    assert!(!has(&fx, |e| matches!(
        e,
        Effect::EnsureImage { .. } | Effect::Create { .. }
    )));
    assert_eq!(event_reasons(&fx), vec!["BackOff"]);
    let st = reports(&fx);
    assert_eq!(waiting_reason(&st[0]).as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(st[0].containers[0].restart_count, 1);
    assert!(matches!(
        st[0].containers[0].last_state,
        Some(ContainerState::Terminated { exit_code: 1, .. })
    ));
    assert_eq!(
        st[0].phase,
        PodPhase::Running,
        "kubelet: restartable = Running"
    );
    let fx = lc.handle(Input::Tick { now: 12 * S });
    assert!(
        !has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "still backing off"
    );
    let fx = lc.handle(Input::Tick { now: 13 * S });
    assert!(
        has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "{fx:?}"
    );
    let fx = lc.handle(Input::Done(Outcome::ImageReady {
        key: key("u2"),
        pulled: false,
    }));
    assert!(has(&fx, |e| matches!(
        e,
        Effect::Create {
            restart_count: 2,
            ..
        }
    )));
    lc.handle(Input::Done(Outcome::Created {
        key: key("u2"),
        id: "c2".into(),
    }));
    lc.handle(Input::Done(Outcome::Started {
        key: key("u2"),
        id: "c2".into(),
    }));
    let list = vec![
        snapshot(&p, "c2", 2, exited(1, 13 * S, 14 * S)),
        snapshot(&p, "c1", 1, exited(1, 2 * S, 3 * S)),
        snapshot(&p, "c0", 0, exited(1, S, 2 * S)),
    ];
    let fx = lc.handle(Input::Containers { list, now: 14 * S });
    assert!(
        has(&fx, |e| matches!(e, Effect::Remove { id } if id == "c0")),
        "only current and previous instances are kept: {fx:?}"
    );
    let fx = lc.handle(Input::Tick { now: 33 * S });
    assert!(
        !has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "20 s now"
    );
    let fx = lc.handle(Input::Tick { now: 34 * S });
    assert!(has(&fx, |e| matches!(e, Effect::EnsureImage { .. })));
}

#[test]
fn back_off_resets_after_ten_minutes_of_running() {
    let p = pod("u3", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c5", 5, exited(1, 0, 601 * S))],
        now: 601 * S,
    });
    // Adopted after an agent restart; restart count 5 would mean a 160 s back-off, but
    // it ran for more than 10 minutes.
    let fx = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u3".into(),
        result: Ok(()),
    }));
    assert!(
        has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "{fx:?}"
    );
}

#[test]
fn restart_policies() {
    for (policy, code, restarts, phase) in [
        (RestartPolicy::Never, 0, false, PodPhase::Succeeded),
        (RestartPolicy::Never, 3, false, PodPhase::Failed),
        (RestartPolicy::OnFailure, 0, false, PodPhase::Succeeded),
        (RestartPolicy::OnFailure, 3, true, PodPhase::Running),
        (RestartPolicy::Always, 0, true, PodPhase::Running),
    ] {
        let p = pod("u4", policy);
        let mut lc = PodLifecycle::new(timings(), None);
        lc.handle(Input::Desired(DesiredSet {
            generation: 1,
            pods: vec![p.clone()],
        }));
        lc.handle(Input::Containers {
            list: vec![snapshot(&p, "c0", 0, exited(code, S, 2 * S))],
            now: 2 * S,
        });
        let fx = lc.handle(Input::Done(Outcome::VolumesReady {
            pod_uid: "u4".into(),
            result: Ok(()),
        }));
        assert_eq!(
            has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
            restarts,
            "{policy:?} exit {code}"
        );
        let st = lc.full_status();
        assert_eq!(st[0].phase, phase, "{policy:?} exit {code}");
        if !restarts {
            assert!(matches!(
                st[0].containers[0].state,
                ContainerState::Terminated { exit_code, .. } if exit_code == code
            ));
        }
    }
}

#[test]
fn image_pull_failure_gives_err_image_pull_then_back_off() {
    let p = pod("u5", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![],
        now: 0,
    });
    lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u5".into(),
        result: Ok(()),
    }));
    lc.handle(Input::Done(Outcome::PullStarted { key: key("u5") }));
    let fx = lc.handle(Input::Done(Outcome::ImageFailed {
        key: key("u5"),
        message: "manifest unknown".into(),
    }));
    let st = reports(&fx);
    assert_eq!(waiting_reason(&st[0]).as_deref(), Some("ErrImagePull"));
    assert_eq!(event_reasons(&fx), vec!["Failed", "Failed"]);
    let fx = lc.handle(Input::Tick { now: S });
    let st = reports(&fx);
    assert_eq!(waiting_reason(&st[0]).as_deref(), Some("ImagePullBackOff"));
    assert_eq!(event_reasons(&fx), vec!["BackOff"]);
    assert!(!has(&fx, |e| matches!(e, Effect::EnsureImage { .. })));
    let fx = lc.handle(Input::Tick { now: 10 * S });
    assert!(
        has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "retried"
    );
}

#[test]
fn a_restarted_agent_adopts_running_containers() {
    let p = pod("u6", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 4,
        pods: vec![p.clone()],
    }));
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c3", 3, RunState::Running { started_at: S })],
        now: 2 * S,
    });
    let fx2 = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u6".into(),
        result: Ok(()),
    }));
    for e in fx.iter().chain(fx2.iter()) {
        assert!(
            !matches!(
                e,
                Effect::Create { .. } | Effect::Start { .. } | Effect::Stop { .. }
            ),
            "{e:?}"
        );
    }
    let st = lc.full_status();
    assert_eq!(st[0].phase, PodPhase::Running);
    assert_eq!(st[0].containers[0].restart_count, 3);
    assert_eq!(lc.generation(), 4);
}

#[test]
fn deletion_stops_with_grace_removes_and_reports_removed() {
    let p = pod("u7", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, RunState::Running { started_at: S })],
        now: 2 * S,
    });
    lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u7".into(),
        result: Ok(()),
    }));
    let mut deleting = p.clone();
    deleting.deletion_grace_period_seconds = Some(3);
    let fx = lc.handle(Input::Desired(DesiredSet {
        generation: 2,
        pods: vec![deleting],
    }));
    assert!(has(
        &fx,
        |e| matches!(e, Effect::Stop { id, grace } if id == "c0" && *grace == Duration::from_secs(3))
    ));
    assert_eq!(event_reasons(&fx), vec!["Killing"]);
    lc.handle(Input::Done(Outcome::Stopped { id: "c0".into() }));
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, exited(137, S, 3 * S))],
        now: 3 * S,
    });
    assert!(has(
        &fx,
        |e| matches!(e, Effect::Remove { id } if id == "c0")
    ));
    let fx = lc.handle(Input::Done(Outcome::Removed { id: "c0".into() }));
    assert!(has(&fx, |e| matches!(e, Effect::CleanupPod { .. })));
    let st = reports(&fx);
    assert!(st[0].removed, "{st:?}");
    let fx = lc.handle(Input::Tick { now: 5 * S });
    assert!(fx.is_empty(), "reported once: {fx:?}");
}

#[test]
fn containers_of_unknown_pods_are_removed() {
    let stranger = pod("gone", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet::default()));
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(
            &stranger,
            "x",
            0,
            RunState::Running { started_at: S },
        )],
        now: 2 * S,
    });
    assert!(has(
        &fx,
        |e| matches!(e, Effect::Stop { id, grace } if id == "x" && *grace == Duration::from_secs(5))
    ));
}

#[test]
fn liveness_failure_kills_the_container() {
    let mut p = pod("u8", RestartPolicy::Always);
    p.containers[0].liveness_probe = Some(edge_protocol::Probe {
        handler: edge_protocol::ProbeHandler::TcpSocket {
            host: None,
            port: 1,
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 1,
    });
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, RunState::Running { started_at: S })],
        now: 2 * S,
    });
    let fx = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u8".into(),
        result: Ok(()),
    }));
    assert!(has(
        &fx,
        |e| matches!(e, Effect::WatchProbes { container_id, .. } if container_id == "c0")
    ));
    let fx = lc.handle(Input::Probe(ProbeReport {
        container_id: "c0".into(),
        kind: ProbeKind::Liveness,
        success: false,
        message: "connection refused".into(),
    }));
    assert!(has(
        &fx,
        |e| matches!(e, Effect::Stop { id, .. } if id == "c0")
    ));
    assert_eq!(event_reasons(&fx), vec!["Unhealthy", "Killing"]);
}

/// A readiness probe running `true` every second.
fn exec_readiness_probe() -> edge_protocol::Probe {
    edge_protocol::Probe {
        handler: edge_protocol::ProbeHandler::Exec {
            command: vec!["true".into()],
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 3,
    }
}

#[test]
fn readiness_gates_ready() {
    let mut p = pod("u9", RestartPolicy::Always);
    p.containers[0].readiness_probe = Some(exec_readiness_probe());
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, RunState::Running { started_at: S })],
        now: 2 * S,
    });
    lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u9".into(),
        result: Ok(()),
    }));
    assert!(!lc.full_status()[0].containers[0].ready);
    let fx = lc.handle(Input::Probe(ProbeReport {
        container_id: "c0".into(),
        kind: ProbeKind::Readiness,
        success: true,
        message: String::new(),
    }));
    assert!(reports(&fx)[0].containers[0].ready);
}

/// A listing can show a container running before the start's own outcome arrives (a
/// loaded machine): its readiness probe has not run, so it is not ready yet.
#[test]
fn a_container_seen_running_before_its_start_returned_is_not_ready() {
    let mut p = pod("u9b", RestartPolicy::Always);
    p.containers[0].readiness_probe = Some(exec_readiness_probe());
    let mut lc = up_to_create(&p, 100 * S);
    lc.handle(Input::Done(Outcome::Created {
        key: key("u9b"),
        id: "c0".into(),
    }));
    let running = RunState::Running {
        started_at: 101 * S,
    };
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, running)],
        now: 102 * S,
    });
    let st = reports(&fx);
    assert_eq!(st[0].phase, PodPhase::Running, "{st:?}");
    assert!(!st[0].containers[0].ready, "not probed yet: {st:?}");
    lc.handle(Input::Done(Outcome::Started {
        key: key("u9b"),
        id: "c0".into(),
    }));
    assert!(!lc.full_status()[0].containers[0].ready);
}

#[test]
fn volume_failure_is_create_container_config_error_and_retried() {
    let p = pod("u10", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![],
        now: 0,
    });
    let fx = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u10".into(),
        result: Err(VolumeError::HostPath {
            volume: "data".into(),
            path: "/missing".into(),
            problem: "does not exist".into(),
        }
        .into()),
    }));
    let st = reports(&fx);
    assert_eq!(
        waiting_reason(&st[0]).as_deref(),
        Some("CreateContainerConfigError")
    );
    assert_eq!(event_reasons(&fx), vec!["FailedMount"]);
    let fx = lc.handle(Input::Tick { now: 10 * S });
    assert!(has(&fx, |e| matches!(e, Effect::PrepareVolumes { .. })));
}

#[test]
fn create_failure_is_reported_with_the_kubelet_reason() {
    let p = pod("u11", RestartPolicy::Always);
    let mut lc = up_to_create(&p, 0);
    let fx = lc.handle(Input::Done(Outcome::CreateFailed {
        key: key("u11"),
        reason: FailureReason::CreateContainerConfigError,
        message: "device \"/dev/gpiomem\" does not exist".into(),
    }));
    let st = reports(&fx);
    assert_eq!(
        waiting_reason(&st[0]).as_deref(),
        Some("CreateContainerConfigError")
    );
}

#[test]
fn phases_follow_the_kubelet() {
    let running = ContainerStatus {
        state: ContainerState::Running { started_at: 1 },
        ..Default::default()
    };
    let done = |code| ContainerStatus {
        state: ContainerState::Terminated {
            exit_code: code,
            signal: None,
            reason: String::new(),
            message: None,
            started_at: None,
            finished_at: None,
        },
        ..Default::default()
    };
    let creating = ContainerStatus::default();
    use RestartPolicy::*;
    assert_eq!(
        pod_phase(Always, std::slice::from_ref(&creating)),
        PodPhase::Pending
    );
    assert_eq!(
        pod_phase(Always, &[running.clone(), creating]),
        PodPhase::Pending
    );
    assert_eq!(
        pod_phase(Always, &[running.clone(), done(0)]),
        PodPhase::Running
    );
    assert_eq!(pod_phase(Never, &[done(0), done(0)]), PodPhase::Succeeded);
    assert_eq!(pod_phase(Never, &[done(0), done(1)]), PodPhase::Failed);
    assert_eq!(pod_phase(OnFailure, &[done(0), done(1)]), PodPhase::Running);
}

#[test]
fn log_targets() {
    let p = pod("u12", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, RunState::Running { started_at: S })],
        now: S,
    });
    assert_eq!(lc.log_target("u12", "", "", "main", false), Ok("c0".into()));
    assert_eq!(
        lc.log_target("u12", "", "", "main", true),
        Err(LogTargetError::NoPreviousInstance)
    );
    assert_eq!(
        lc.log_target("u12", "", "", "other", false),
        Err(LogTargetError::UnknownContainer)
    );
    assert_eq!(
        lc.log_target("", "default", "pod-u12", "main", false),
        Ok("c0".into())
    );
}

#[test]
fn only_running_containers_of_pods_that_did_not_opt_out_are_log_cached() {
    let cached = pod("u30", RestartPolicy::Always);
    let opted_out = PodSpec {
        log_cache_opt_out: true,
        ..pod("u31", RestartPolicy::Always)
    };
    let stopped = pod("u32", RestartPolicy::Never);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![cached.clone(), opted_out.clone(), stopped.clone()],
    }));
    let stranger = pod("u33", RestartPolicy::Always);
    lc.handle(Input::Containers {
        list: vec![
            snapshot(&cached, "c30", 0, RunState::Running { started_at: S }),
            snapshot(&opted_out, "c31", 0, RunState::Running { started_at: S }),
            snapshot(&stopped, "c32", 0, exited(0, S, 2 * S)),
            snapshot(&stranger, "c33", 0, RunState::Running { started_at: S }),
        ],
        now: 2 * S,
    });
    let ids: Vec<&str> = lc
        .log_cached_containers()
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, ["c30"]);
}

#[test]
fn an_image_change_replaces_the_container_an_env_change_does_not() {
    let p = pod("u13", RestartPolicy::Always);
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    let running = snapshot(&p, "c0", 0, RunState::Running { started_at: S });
    lc.handle(Input::Containers {
        list: vec![running.clone()],
        now: 2 * S,
    });
    lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u13".into(),
        result: Ok(()),
    }));
    let mut env_changed = p.clone();
    env_changed.containers[0].env = vec![edge_protocol::EnvVar {
        name: "A".into(),
        value: "b".into(),
    }];
    let fx = lc.handle(Input::Desired(DesiredSet {
        generation: 2,
        pods: vec![env_changed.clone()],
    }));
    assert!(!has(&fx, |e| matches!(e, Effect::Stop { .. })), "{fx:?}");
    let mut image_changed = env_changed;
    image_changed.containers[0].image = "localhost/busybox:v2".into();
    let fx = lc.handle(Input::Desired(DesiredSet {
        generation: 3,
        pods: vec![image_changed],
    }));
    assert!(has(
        &fx,
        |e| matches!(e, Effect::Stop { id, .. } if id == "c0")
    ));
    assert_eq!(event_reasons(&fx), vec!["Killing"]);
    // Once stopped, the new instance comes at once (no crash-loop back-off).
    let fx = lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, exited(137, S, 3 * S))],
        now: 3 * S,
    });
    assert!(
        has(
            &fx,
            |e| matches!(e, Effect::EnsureImage { image, .. } if image == "localhost/busybox:v2")
        ),
        "{fx:?}"
    );
}

#[test]
fn a_container_removed_behind_the_agents_back_is_recreated_and_unprobed() {
    let mut p = pod("u14", RestartPolicy::Always);
    p.containers[0].readiness_probe = Some(edge_protocol::Probe {
        handler: edge_protocol::ProbeHandler::TcpSocket {
            host: None,
            port: 1,
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 1,
    });
    let mut lc = PodLifecycle::new(timings(), None);
    lc.handle(Input::Desired(DesiredSet {
        generation: 1,
        pods: vec![p.clone()],
    }));
    lc.handle(Input::Containers {
        list: vec![snapshot(&p, "c0", 0, RunState::Running { started_at: S })],
        now: 2 * S,
    });
    let fx = lc.handle(Input::Done(Outcome::VolumesReady {
        pod_uid: "u14".into(),
        result: Ok(()),
    }));
    assert!(has(&fx, |e| matches!(e, Effect::WatchProbes { .. })));
    let fx = lc.handle(Input::Containers {
        list: vec![],
        now: 3 * S,
    });
    assert!(has(
        &fx,
        |e| matches!(e, Effect::UnwatchProbes { container_id } if container_id == "c0")
    ));
    assert!(
        has(&fx, |e| matches!(e, Effect::EnsureImage { .. })),
        "{fx:?}"
    );
}
