#![allow(clippy::unwrap_used)]
use super::*;

use edge_protocol::{StdioSelection, StreamPod};

use crate::config::LifecycleTimings;
use crate::container_labels::ContainerIdentity;
use crate::pod_lifecycle::Input;

fn container(
    id: &str,
    uid: &str,
    name: &str,
    restarts: u32,
    running: bool,
    ip: Option<&str>,
) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.into(),
        identity: ContainerIdentity {
            device: "pi-01".into(),
            pod_uid: uid.into(),
            pod_namespace: "default".into(),
            pod_name: format!("pod-{uid}"),
            container_name: name.into(),
            restart_count: restarts,
            spec_hash: String::new(),
            grace_period_seconds: 1,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        },
        state: if running {
            RunState::Running { started_at: 1 }
        } else {
            RunState::Exited {
                exit_code: 0,
                started_at: Some(1),
                finished_at: Some(2),
                oom_killed: false,
                error: None,
            }
        },
        image_id: String::new(),
        ip_address: ip.map(str::to_owned),
    }
}

/// A lifecycle that saw these managed containers (the only ones streams may reach).
fn lifecycle() -> PodLifecycle {
    let mut l = PodLifecycle::new(LifecycleTimings::default(), None);
    let _ = l.handle(Input::Containers {
        list: vec![
            container("old-web", "u1", "web", 0, false, Some("10.88.0.5")),
            container("web-1", "u1", "web", 1, true, Some("10.88.0.6")),
            container("side-1", "u1", "side", 0, true, None),
            container("done-1", "u2", "job", 0, false, Some("10.88.0.9")),
        ],
        now: 10,
    });
    l
}

fn pod(uid: &str) -> StreamPod {
    StreamPod {
        pod_uid: uid.into(),
        namespace: "default".into(),
        pod_name: format!("pod-{uid}"),
    }
}

const OUT: StdioSelection = StdioSelection {
    stdin: false,
    stdout: true,
    stderr: false,
    tty: false,
};

fn open(target: StreamTarget) -> StreamOpen {
    StreamOpen {
        version: 1,
        target,
        terminal_size: None,
        window_bytes: 1024,
    }
}

fn exec(pod: StreamPod, container: &str, command: &[&str], stdio: StdioSelection) -> StreamOpen {
    open(StreamTarget::Exec {
        pod,
        container: container.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        stdio,
    })
}

fn refused(open: &StreamOpen) -> StreamErrorCode {
    resolve(open, &lifecycle()).unwrap_err().error.unwrap().code
}

#[test]
fn exec_and_attach_reach_the_current_instance_of_the_pods_own_container() {
    let l = lifecycle();
    match resolve(&exec(pod("u1"), "web", &["sh"], OUT), &l).unwrap() {
        Resolved::Exec { container_id, .. } => assert_eq!(container_id, "web-1"),
        other => panic!("{other:?}"),
    }
    // By namespace and name when the uid is not given.
    let by_name = StreamPod {
        pod_uid: String::new(),
        ..pod("u1")
    };
    let attach = open(StreamTarget::Attach {
        pod: by_name,
        container: "side".into(),
        stdio: OUT,
    });
    match resolve(&attach, &l).unwrap() {
        Resolved::Attach { container_id, .. } => assert_eq!(container_id, "side-1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_pods_unknown_containers_and_stopped_ones_are_refused() {
    // A container of another pod, even with a name that exists elsewhere.
    assert_eq!(
        refused(&exec(pod("u2"), "web", &["sh"], OUT)),
        StreamErrorCode::NotFound
    );
    assert_eq!(
        refused(&exec(pod("nobody"), "web", &["sh"], OUT)),
        StreamErrorCode::NotFound
    );
    assert_eq!(
        refused(&exec(pod("u1"), "nope", &["sh"], OUT)),
        StreamErrorCode::NotFound
    );
    let stopped = resolve(&exec(pod("u2"), "job", &["sh"], OUT), &lifecycle()).unwrap_err();
    let error = stopped.error.unwrap();
    assert_eq!(error.code, StreamErrorCode::NotRunning);
    assert!(
        error.message.contains("is not running"),
        "{}",
        error.message
    );
}

#[test]
fn bad_requests_and_old_versions_are_refused() {
    assert_eq!(
        refused(&exec(pod("u1"), "web", &[], OUT)),
        StreamErrorCode::BadRequest
    );
    assert_eq!(
        refused(&exec(pod("u1"), "", &["sh"], OUT)),
        StreamErrorCode::BadRequest
    );
    assert_eq!(
        refused(&exec(pod("u1"), "web", &["sh"], StdioSelection::default())),
        StreamErrorCode::BadRequest
    );
    let mut v0 = exec(pod("u1"), "web", &["sh"], OUT);
    v0.version = 0;
    assert_eq!(refused(&v0), StreamErrorCode::Unsupported);
    assert_eq!(
        refused(&open(StreamTarget::PortForward {
            pod: pod("u1"),
            port: 0
        })),
        StreamErrorCode::BadRequest
    );
}

#[test]
fn port_forward_tries_each_running_container_host_network_on_loopback() {
    let forward = |uid: &str| {
        open(StreamTarget::PortForward {
            pod: pod(uid),
            port: 8080,
        })
    };
    match resolve(&forward("u1"), &lifecycle()).unwrap() {
        Resolved::PortForward { addresses } => {
            let mut got: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            got.sort();
            assert_eq!(got, vec!["10.88.0.6:8080", "127.0.0.1:8080"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(refused(&forward("u2")), StreamErrorCode::NotRunning);
    assert_eq!(refused(&forward("nobody")), StreamErrorCode::NotFound);
}

#[test]
fn port_forward_enters_a_pod_through_its_infra_container_only() {
    let mut l = PodLifecycle::new(LifecycleTimings::default(), None);
    let _ = l.handle(Input::Containers {
        list: vec![
            container("infra-1", "u3", "POD", 0, true, Some("10.88.0.20")),
            container("web-3", "u3", "web", 0, true, None),
            container("infra-4", "u4", "POD", 0, true, None),
            container("web-4", "u4", "web", 0, true, None),
        ],
        now: 10,
    });
    let forward = |uid: &str| {
        open(StreamTarget::PortForward {
            pod: pod(uid),
            port: 8080,
        })
    };
    match resolve(&forward("u3"), &l).unwrap() {
        Resolved::PortForward { addresses } => {
            let got: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            assert_eq!(got, vec!["10.88.0.20:8080"]);
        }
        other => panic!("{other:?}"),
    }
    // An infra container without an address (an engine without a bridge) is never
    // taken for the host's loopback.
    assert_eq!(
        resolve(&forward("u4"), &l).unwrap_err().error.unwrap().code,
        StreamErrorCode::NotRunning
    );
    // The infra container is not a container of the pod to exec into.
    let target = exec(pod("u3"), "POD", &["sh"], OUT);
    assert_eq!(
        resolve(&target, &l).unwrap_err().error.unwrap().code,
        StreamErrorCode::NotFound
    );
}
