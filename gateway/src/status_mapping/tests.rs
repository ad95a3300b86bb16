use super::*;
use serde_json::json;

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "apps", "uid": "u1"},
        "spec": {"nodeName": "pi-01", "containers": [
            {"name": "app", "image": "busybox:1"}, {"name": "side", "image": "busybox:2"}
        ]},
        "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
        ]}
    }))
    .unwrap()
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(1_700_000_100).unwrap())
}

fn running(name: &str, ready: bool) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: ContainerState::Running {
            started_at: 1_700_000_050_000,
        },
        ready,
        started: Some(true),
        restart_count: 1,
        image: "busybox:1".into(),
        image_id: "sha256:abc".into(),
        container_id: Some("docker://c1".into()),
        last_state: None,
    }
}

fn report(phase: PodPhase, containers: Vec<ContainerStatus>) -> DevicePodStatus {
    DevicePodStatus {
        uid: "u1".into(),
        namespace: "apps".into(),
        name: "web".into(),
        phase,
        start_time: Some(1_700_000_040_000),
        containers,
        ..Default::default()
    }
}

fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
    s.conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == t)
        .unwrap()
}

#[test]
fn running_and_ready() {
    let r = report(
        PodPhase::Running,
        vec![running("app", true), running("side", true)],
    );
    let s = kube_pod_status(&pod(), &r, Some("192.168.1.20"), &now());
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(cond(&s, "ContainersReady").status, "True");
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert_eq!(
        cond(&s, "PodScheduled")
            .last_transition_time
            .as_ref()
            .unwrap()
            .0
            .as_second(),
        1_704_067_200,
        "kept from the existing status"
    );
    assert_eq!(s.host_ip.as_deref(), Some("192.168.1.20"));
    assert_eq!(
        s.pod_ip.as_deref(),
        Some("192.168.1.20"),
        "host network falls back to host IP"
    );
    assert_eq!(s.start_time.as_ref().unwrap().0.as_second(), 1_700_000_040);
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    let cs = s.container_statuses.unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].restart_count, 1);
    assert_eq!(cs[0].container_id.as_deref(), Some("docker://c1"));
    assert!(cs[0].state.as_ref().unwrap().running.is_some());
}

#[test]
fn unready_container_is_named_and_missing_ones_wait() {
    let r = report(PodPhase::Running, vec![running("app", false)]);
    let s = kube_pod_status(&pod(), &r, None, &now());
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app side]")
    );
    let side = &s.container_statuses.as_ref().unwrap()[1];
    assert_eq!(
        side.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("ContainerCreating")
    );
}

#[test]
fn completed_pods_are_not_ready_with_pod_completed() {
    let done = ContainerStatus {
        name: "app".into(),
        state: ContainerState::Terminated {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: Some(1_700_000_000_000),
            finished_at: Some(1_700_000_001_000),
        },
        ..Default::default()
    };
    let r = report(PodPhase::Succeeded, vec![done]);
    let s = kube_pod_status(&pod(), &r, None, &now());
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    let t = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
}

#[test]
fn transition_times_survive_unchanged_status() {
    let mut p = pod();
    let r = report(
        PodPhase::Running,
        vec![running("app", true), running("side", true)],
    );
    let first = kube_pod_status(&p, &r, None, &now());
    p.status = Some(first.clone());
    let later = Time(jiff::Timestamp::from_second(1_700_009_999).unwrap());
    let second = kube_pod_status(&p, &r, None, &later);
    assert_eq!(
        cond(&first, "Ready").last_transition_time,
        cond(&second, "Ready").last_transition_time
    );
}

#[test]
fn config_errors_look_like_the_kubelet() {
    let s = config_error_status(&pod(), "secret \"x\" not found", None, &now());
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let w = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(w.message.as_deref(), Some("secret \"x\" not found"));
}

fn debugged_pod() -> Pod {
    let mut p = pod();
    let spec = p.spec.as_mut().unwrap();
    spec.ephemeral_containers = Some(vec![
        serde_json::from_value(json!({
            "name": "debugger", "image": "busybox:dbg", "targetContainerName": "app"
        }))
        .unwrap(),
        serde_json::from_value(json!({"name": "later", "image": "busybox:later"})).unwrap(),
    ]);
    p
}

#[test]
fn ephemeral_containers_are_reported_apart_never_ready_nor_restarted() {
    let mut r = report(
        PodPhase::Running,
        vec![running("app", true), running("side", true)],
    );
    let mut debugger = running("debugger", true);
    debugger.image = "busybox:dbg".into();
    r.ephemeral_containers = vec![debugger];
    let s = kube_pod_status(&debugged_pod(), &r, Some("10.0.0.5"), &now());
    let names: Vec<&str> = s
        .container_statuses
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["app", "side"]);
    assert_eq!(cond(&s, "Ready").status, "True", "ephemeral do not count");
    let eph = s.ephemeral_container_statuses.as_ref().unwrap();
    assert_eq!(eph.len(), 2);
    assert_eq!(eph[0].name, "debugger");
    assert!(eph[0].state.as_ref().unwrap().running.is_some());
    assert!(!eph[0].ready);
    assert_eq!(eph[0].restart_count, 0);
    assert_eq!(eph[0].container_id.as_deref(), Some("docker://c1"));
    // Not reported yet by the device: waiting to be created.
    assert_eq!(eph[1].name, "later");
    assert_eq!(eph[1].image, "busybox:later");
    let waiting = eph[1].state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
}

#[test]
fn a_pod_without_ephemeral_containers_leaves_the_field_unset() {
    let r = report(PodPhase::Running, vec![running("app", true)]);
    let s = kube_pod_status(&pod(), &r, None, &now());
    assert_eq!(s.ephemeral_container_statuses, None);
}

fn pod_with_init() -> Pod {
    let mut p = pod();
    let spec = p.spec.as_mut().unwrap();
    spec.init_containers = Some(
        serde_json::from_value(json!([
            {"name": "sidecar", "image": "busybox:3", "restartPolicy": "Always"},
            {"name": "setup", "image": "busybox:4"}
        ]))
        .unwrap(),
    );
    p
}

fn waiting_for_init(name: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: ContainerState::Waiting {
            reason: "PodInitializing".into(),
            message: None,
        },
        ..Default::default()
    }
}

#[test]
fn init_containers_are_reported_and_hold_initialized_until_done() {
    let mut r = report(
        PodPhase::Pending,
        vec![waiting_for_init("app"), waiting_for_init("side")],
    );
    r.init_containers = vec![running("sidecar", true)];
    let s = kube_pod_status(&pod_with_init(), &r, Some("192.168.1.20"), &now());
    let init = s.init_container_statuses.as_ref().unwrap();
    assert_eq!(init.len(), 2);
    assert_eq!(init[0].name, "sidecar");
    assert!(init[0].state.as_ref().unwrap().running.is_some());
    // Not reported yet: PodInitializing, as the kubelet (kubectl prints Init:1/2).
    assert_eq!(
        init[1]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("PodInitializing")
    );
    let initialized = cond(&s, "Initialized");
    assert_eq!(initialized.status, "False");
    assert_eq!(
        initialized.reason.as_deref(),
        Some("ContainersNotInitialized")
    );
    assert_eq!(
        initialized.message.as_deref(),
        Some("containers with incomplete status: [setup]")
    );

    // setup completed, the containers run: initialized.
    r.init_containers.push(ContainerStatus {
        name: "setup".into(),
        state: ContainerState::Terminated {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: None,
            finished_at: None,
        },
        ready: true,
        ..Default::default()
    });
    r.containers = vec![running("app", true), running("side", true)];
    r.phase = PodPhase::Running;
    let s = kube_pod_status(&pod_with_init(), &r, Some("192.168.1.20"), &now());
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert_eq!(cond(&s, "Ready").status, "True");
    let terminated = s.init_container_statuses.as_ref().unwrap()[1]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(terminated.exit_code, 0);

    // An unready sidecar keeps the pod unready.
    r.init_containers[0].ready = false;
    let s = kube_pod_status(&pod_with_init(), &r, Some("192.168.1.20"), &now());
    assert_eq!(cond(&s, "Ready").status, "False");
}

#[test]
fn pods_without_init_containers_have_no_init_statuses() {
    let r = report(
        PodPhase::Running,
        vec![running("app", true), running("side", true)],
    );
    let s = kube_pod_status(&pod(), &r, None, &now());
    assert!(s.init_container_statuses.is_none());
    assert_eq!(cond(&s, "Initialized").status, "True");
}
