//! Init and sidecar containers on real Podman, through the agent binary: order, the
//! emptyDir an init container fills, sidecars that start first and stop last, and init
//! containers that never succeed (the kubelet's Failed / Init:CrashLoopBackOff) without
//! harm to the device's other pods.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use edge_protocol::{
    ContainerSpec, ContainerState, ContainerStatus, PodPhase, PodSpec, PodStatus, RestartPolicy,
    Volume, VolumeMount, VolumeSource,
};

const T: Duration = Duration::from_secs(90);

fn sh(name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: test_image(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        volume_mounts: vec![VolumeMount {
            name: "work".into(),
            mount_path: "/work".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn sidecar(name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        restart_policy: Some(RestartPolicy::Always),
        ..sh(name, script)
    }
}

/// A pod (on the pod network) with an emptyDir `work` at /work in every container.
fn pod(
    uid: &str,
    name: &str,
    policy: RestartPolicy,
    init: Vec<ContainerSpec>,
    app: ContainerSpec,
) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        namespace: "default".into(),
        name: name.into(),
        containers: vec![app],
        init_containers: init,
        volumes: vec![Volume {
            name: "work".into(),
            source: VolumeSource::EmptyDir {
                in_memory: false,
                size_limit_bytes: None,
            },
        }],
        restart_policy: policy,
        termination_grace_period_seconds: 2,
        host_network: false,
        ..Default::default()
    }
}

fn logs_of(uid: &str, container: &str) -> String {
    podman_containers(uid)
        .into_iter()
        .filter(|(_, name, _)| name.contains(&format!("_{container}_")))
        .map(|(id, _, _)| {
            let out = Command::new("podman").args(["logs", &id]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// `podman inspect` time of the container's `field` (`StartedAt`, `FinishedAt`) in
/// Unix nanoseconds.
fn state_time(uid: &str, container: &str, field: &str) -> i128 {
    let (id, _, _) = podman_containers(uid)
        .into_iter()
        .find(|(_, name, _)| name.contains(&format!("_{container}_")) && name.ends_with("_0"))
        .unwrap();
    let out = Command::new("podman")
        .args([
            "inspect",
            "--format",
            &format!("{{{{.State.{field}.UnixNano}}}}"),
            &id,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn init_status<'a>(s: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    s.init_containers.iter().find(|c| c.name == name).unwrap()
}

fn waiting_reason_of(c: &ContainerStatus) -> Option<&str> {
    match &c.state {
        ContainerState::Waiting { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_sidecar_containers_as_the_kubelet_runs_them() {
    let port = start_rumqttd();
    let device = "pod-init-1";
    let dir = tempfile::tempdir().unwrap();
    let uids: Vec<String> = ["pini1", "pini2", "pini3", "pini4", "pini5"]
        .iter()
        .map(|t| unique_uid(t))
        .collect();
    // Declared before the agent: dropped after it, so nothing is recreated.
    let _cleanup = PodCleanup(uids.clone());
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start(device, port, dir.path());
    gw.wait_agent_online().await;
    let [steady, fills, sidecars, never, always] = [0, 1, 2, 3, 4].map(|i| uids[i].clone());

    // A pod that is running before the others fail.
    let steady_pod = pod(
        &steady,
        "steady",
        RestartPolicy::Always,
        vec![],
        sh("app", "exec sleep 1000"),
    );
    gw.desire(1, vec![steady_pod.clone()]).await;
    gw.wait_status(&steady, "steady running", T, is_running)
        .await;

    // Two init containers in order fill the emptyDir, the app reads it.
    let fills_pod = pod(
        &fills,
        "fills",
        RestartPolicy::Always,
        vec![
            sh("first", "echo one > /work/msg"),
            sh("second", "test -f /work/msg && echo two >> /work/msg"),
        ],
        sh("app", "cat /work/msg; exec sleep 1000"),
    );
    // A sidecar that must be up before the init container and the app run; the app
    // finishes, the pod completes and the sidecar stops after it.
    let sidecar_pod = pod(
        &sidecars,
        "sidecars",
        RestartPolicy::Never,
        vec![
            sidecar(
                "side",
                "echo up > /work/side; trap 'exit 0' TERM; while sleep 0.2; do :; done",
            ),
            sh("after-side", "test -f /work/side"),
        ],
        sh("app", "test -f /work/side && echo saw-sidecar; sleep 1"),
    );
    let never_pod = pod(
        &never,
        "init-never",
        RestartPolicy::Never,
        vec![sh("broken", "echo broken; exit 3")],
        sh("app", "exec sleep 1000"),
    );
    let always_pod = pod(
        &always,
        "init-always",
        RestartPolicy::Always,
        vec![sh("broken", "exit 1")],
        sh("app", "exec sleep 1000"),
    );
    gw.desire(
        2,
        vec![steady_pod, fills_pod, sidecar_pod, never_pod, always_pod],
    )
    .await;

    let s = gw.wait_status(&fills, "fills running", T, is_running).await;
    for name in ["first", "second"] {
        match &init_status(&s, name).state {
            ContainerState::Terminated {
                exit_code, reason, ..
            } => assert_eq!((*exit_code, reason.as_str()), (0, "Completed")),
            other => panic!("{name}: {other:?}"),
        }
    }
    wait_until(T, "the app read what the init containers wrote", || {
        logs_of(&fills, "app").contains("one\ntwo")
    })
    .await;

    let s = gw
        .wait_status(&sidecars, "sidecar pod completed", T, |s| {
            s.phase == PodPhase::Succeeded
                && matches!(
                    init_status(s, "side").state,
                    ContainerState::Terminated { .. }
                )
        })
        .await;
    assert!(logs_of(&sidecars, "app").contains("saw-sidecar"));
    assert!(matches!(
        init_status(&s, "after-side").state,
        ContainerState::Terminated { exit_code: 0, .. }
    ));
    let side_started = state_time(&sidecars, "side", "StartedAt");
    let app_started = state_time(&sidecars, "app", "StartedAt");
    let side_finished = state_time(&sidecars, "side", "FinishedAt");
    let app_finished = state_time(&sidecars, "app", "FinishedAt");
    assert!(side_started < app_started, "the sidecar starts first");
    assert!(side_finished > app_finished, "the sidecar stops last");

    // restartPolicy Never: the failed init container fails the pod, the app never runs.
    let s = gw
        .wait_status(&never, "init failure fails the pod", T, |s| {
            s.phase == PodPhase::Failed
        })
        .await;
    match &init_status(&s, "broken").state {
        ContainerState::Terminated {
            exit_code, reason, ..
        } => assert_eq!((*exit_code, reason.as_str()), (3, "Error")),
        other => panic!("{other:?}"),
    }
    assert_eq!(waiting_reason(&s).as_deref(), Some("PodInitializing"));
    assert!(logs_of(&never, "app").is_empty());

    // restartPolicy Always: retried with back-off (Init:CrashLoopBackOff), still Pending.
    let s = gw
        .wait_status(&always, "init crash loop", T, |s| {
            waiting_reason_of(init_status(s, "broken")) == Some("CrashLoopBackOff")
                && init_status(s, "broken").restart_count >= 1
        })
        .await;
    assert_eq!(s.phase, PodPhase::Pending);
    assert!(
        gw.event_reasons(&always).iter().any(|r| r == "BackOff"),
        "{:?}",
        gw.event_reasons(&always)
    );

    // The pod that ran all along is untouched.
    let s = gw.latest_status(&steady).unwrap();
    assert!(is_running(&s));
    assert_eq!(s.containers[0].restart_count, 0);
}
