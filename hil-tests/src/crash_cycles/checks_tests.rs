//! The checks on hand-made observations: each kind of loss and duplication is found,
//! and a converged state gives nothing.

#![allow(clippy::unwrap_used)]

use super::*;

const A: &str = "localhost/busybox:test";
const B: &str = "localhost/busybox:crash-b";

fn workload(pods: &[(&str, PodKind, &str, bool)]) -> Workload {
    let mut w = Workload::new([A.into(), B.into()], 10, ("k".into(), "v".into()));
    for (name, kind, image, deleted) in pods {
        w.pods.insert(
            (*name).to_owned(),
            TrackedPod {
                name: (*name).to_owned(),
                uid: format!("uid-{name}"),
                kind: *kind,
                image: (*image).to_owned(),
                deleted: *deleted,
            },
        );
    }
    w
}

fn container(
    id: &str,
    pod: &str,
    device: &str,
    restart: u32,
    state: &str,
    exit: i64,
    image: &str,
) -> RuntimeContainer {
    RuntimeContainer {
        id: id.into(),
        device: device.into(),
        pod_uid: format!("uid-{pod}"),
        container_name: CONTAINER.into(),
        restart_count: restart,
        state: state.into(),
        exit_code: exit,
        image: image.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn api(
    pod: &str,
    node: &str,
    phase: &str,
    ready: bool,
    id: &str,
    restart: u32,
    state: ApiContainerState,
    image: &str,
) -> ApiPod {
    ApiPod {
        name: pod.into(),
        uid: format!("uid-{pod}"),
        node: Some(node.into()),
        phase: phase.into(),
        ready,
        container: Some(ApiContainer {
            container_id: Some(id.into()),
            restart_count: restart,
            state,
            image: image.into(),
        }),
    }
}

fn converged() -> (Workload, Vec<ApiPod>, Vec<RuntimeContainer>) {
    let w = workload(&[
        ("svc", PodKind::Service, B, false),
        ("job", PodKind::Job { exit_code: 3 }, A, false),
        ("gone", PodKind::Service, A, true),
    ]);
    let api_pods = vec![
        api(
            "svc",
            "d1",
            "Running",
            true,
            "c-svc-1",
            1,
            ApiContainerState::Running,
            B,
        ),
        api(
            "job",
            "d2",
            "Failed",
            false,
            "c-job",
            0,
            ApiContainerState::Terminated { exit_code: 3 },
            A,
        ),
    ];
    let runtime = vec![
        container("c-svc-1", "svc", "d1", 1, "running", 0, B),
        container("c-job", "job", "d2", 0, "exited", 3, A),
    ];
    (w, api_pods, runtime)
}

#[test]
fn a_converged_state_has_no_findings() {
    let (w, a, r) = converged();
    assert_eq!(check(&w, &a, &r), vec![]);
}

#[test]
fn a_pod_running_twice_is_a_duplicate() {
    let (w, a, mut r) = converged();
    r.push(container("c-svc-2", "svc", "d2", 2, "running", 0, B));
    let f = check(&w, &a, &r);
    assert!(f.iter().any(Finding::is_duplicate), "{f:?}");
    assert!(
        f.iter().any(|x| matches!(x, Finding::OnOtherDevice { .. })),
        "{f:?}"
    );
}

#[test]
fn a_deleted_pod_left_running_or_in_the_api_is_found() {
    let (w, mut a, mut r) = converged();
    r.push(container("c-gone", "gone", "d1", 0, "running", 0, A));
    a.push(api(
        "gone",
        "d1",
        "Running",
        true,
        "c-gone",
        0,
        ApiContainerState::Running,
        A,
    ));
    let f = check(&w, &a, &r);
    assert!(
        f.contains(&Finding::DeletedStillInApi { pod: "gone".into() }),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|x| matches!(x, Finding::DeletedStillOnDevice { pod, .. } if pod == "gone")),
        "{f:?}"
    );
}

#[test]
fn a_pod_removed_from_the_api_while_it_runs_is_lost() {
    let (w, mut a, r) = converged();
    a.retain(|p| p.name != "svc");
    let f = check(&w, &a, &r);
    assert!(
        f.iter()
            .any(|x| matches!(x, Finding::MissingFromApi { pod, .. } if pod == "svc")),
        "{f:?}"
    );
}

#[test]
fn an_image_change_not_applied_is_found() {
    let (w, a, mut r) = converged();
    r[0].image = A.into();
    let f = check(&w, &a, &r);
    assert!(
        f.iter()
            .any(|x| matches!(x, Finding::NotRunningOnDevice { pod, .. } if pod == "svc")),
        "{f:?}"
    );
}

#[test]
fn api_status_that_differs_from_the_device_is_found() {
    let (w, mut a, r) = converged();
    a[0].container.as_mut().unwrap().restart_count = 0;
    a[1].phase = "Running".into();
    let f = check(&w, &a, &r);
    assert!(
        f.contains(&Finding::StatusMismatch {
            pod: "svc".into(),
            field: "restartCount",
            api: "0".into(),
            device: "1".into()
        }),
        "{f:?}"
    );
    assert!(
        f.iter().any(
            |x| matches!(x, Finding::StatusMismatch { pod, field: "phase", .. } if pod == "job")
        ),
        "{f:?}"
    );
}

#[test]
fn an_unfinished_job_and_an_unknown_container_are_found() {
    let (w, a, mut r) = converged();
    r[1].state = "running".into();
    r.push(RuntimeContainer {
        pod_uid: "stranger".into(),
        ..container("c-x", "x", "d1", 0, "running", 0, A)
    });
    let f = check(&w, &a, &r);
    assert!(
        f.iter()
            .any(|x| matches!(x, Finding::JobNotFinished { pod, .. } if pod == "job")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|x| matches!(x, Finding::UnknownContainer { uid, .. } if uid == "stranger")),
        "{f:?}"
    );
}
