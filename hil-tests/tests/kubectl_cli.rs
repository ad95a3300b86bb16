#![allow(clippy::unwrap_used)]
//! The real `kubectl` against both Kubernetes APIs of the test bed: the emulator (with
//! the PATH kubectl v1.32, or `$KUBECTL`) and the real control plane v1.37 (with its own
//! kubectl): apply -f, get -o wide, get -w, describe node, logs, logs -f, delete, dry
//! run and diff, protobuf writes and CSR approval, drain, `create token`, server-side
//! apply conflicts, auth can-i/whoami, version, cluster-info. Every such test runs on
//! both (`..._on_the_emulator`, `..._on_the_control_plane`); on the control plane, which
//! the tests of this binary share, each test has its own namespace and node names.
//! Where the two differ, the assertion is the real one's, and the emulator's variant
//! says what it does instead ("emulator difference").
//!
//! The `hil-apiserver` and `hil-controlplane` binaries serving kubectl are tested too.
//!
//! | file | what is there |
//! |---|---|
//! | `kubectl_cli/backend.rs` | the two backends, kubectl, shared helpers |
//! | `kubectl_cli/pods_and_nodes.rs` | apply/get/describe/delete, logs, drain |
//! | `kubectl_cli/objects.rs` | get -w, dry run and diff, server-side apply, protobuf writes, CSRs |
//! | `kubectl_cli/auth.rs` | tokens, can-i, whoami, version, cluster-info |
//! | `kubectl_cli/fake_kubelet.rs` | the kubelet stand-in `kubectl logs` reaches |
//! | `kubectl_cli/processes.rs` | our server binaries as child processes |

#[path = "kubectl_cli/auth.rs"]
mod auth;
#[path = "kubectl_cli/backend.rs"]
mod backend;
#[path = "kubectl_cli/fake_kubelet.rs"]
mod fake_kubelet;
#[path = "kubectl_cli/objects.rs"]
mod objects;
#[path = "kubectl_cli/pods_and_nodes.rs"]
mod pods_and_nodes;
#[path = "kubectl_cli/processes.rs"]
mod processes;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use backend::{Backend, Kubectl, pinned_release};
use edge_hil_tests::controlplane::ControlPlaneBinaries;
use processes::KillOnDrop;

/// Two `#[tokio::test]`s per test body: one on the emulator, one on the control plane.
macro_rules! on_both_backends {
    ($($body:path: $emulator:ident, $control_plane:ident;)*) => {$(
        #[tokio::test]
        async fn $emulator() {
            $body(Backend::emulator().await).await;
        }
        #[tokio::test]
        async fn $control_plane() {
            $body(Backend::control_plane().await).await;
        }
    )*};
}

on_both_backends! {
    pods_and_nodes::apply_get_wide_describe_and_delete:
        apply_get_wide_describe_and_delete_on_the_emulator,
        apply_get_wide_describe_and_delete_on_the_control_plane;
    pods_and_nodes::logs_and_logs_follow_reach_the_kubelet:
        logs_and_logs_follow_reach_the_kubelet_on_the_emulator,
        logs_and_logs_follow_reach_the_kubelet_on_the_control_plane;
    pods_and_nodes::drain_cordons_and_evicts_through_pods_eviction:
        drain_cordons_and_evicts_through_pods_eviction_on_the_emulator,
        drain_cordons_and_evicts_through_pods_eviction_on_the_control_plane;
    objects::get_watch_streams_changes:
        get_watch_streams_changes_on_the_emulator,
        get_watch_streams_changes_on_the_control_plane;
    objects::server_dry_run_and_diff_persist_nothing:
        server_dry_run_and_diff_persist_nothing_on_the_emulator,
        server_dry_run_and_diff_persist_nothing_on_the_control_plane;
    objects::server_side_apply_conflicts_with_other_managers:
        server_side_apply_conflicts_with_other_managers_on_the_emulator,
        server_side_apply_conflicts_with_other_managers_on_the_control_plane;
    objects::typed_client_writes_in_protobuf_and_csr_approval:
        typed_client_writes_in_protobuf_and_csr_approval_on_the_emulator,
        typed_client_writes_in_protobuf_and_csr_approval_on_the_control_plane;
    auth::service_account_tokens_from_kubectl_create_token:
        service_account_tokens_from_kubectl_create_token_on_the_emulator,
        service_account_tokens_from_kubectl_create_token_on_the_control_plane;
    auth::auth_can_i_whoami_version_and_cluster_info:
        auth_can_i_whoami_version_and_cluster_info_on_the_emulator,
        auth_can_i_whoami_version_and_cluster_info_on_the_control_plane;
}

#[tokio::test]
async fn hil_apiserver_binary_serves_kubectl() {
    let bin = env!("CARGO_BIN_EXE_hil-apiserver");
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop::spawn({
        let mut c = Command::new(bin);
        c.args(["--dir", dir.path().to_str().unwrap()])
            .args(["--node-lease-grace", "5s", "--log-filter", "warn"])
            .stdout(Stdio::piped());
        c
    });
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(p) = line.strip_prefix("kubeconfig: ") {
                let _ = tx.send(std::path::PathBuf::from(p));
            }
        }
    });
    let kubeconfig = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("hil-apiserver printed its kubeconfig path");
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let k = Kubectl::new(kubectl.as_ref(), &kubeconfig, None);
    let out = k.run(&["get", "nodes"]).await;
    drop(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "No resources found\n");
}

#[tokio::test]
async fn hil_controlplane_binary_serves_kubectl_and_stops_on_sigterm() {
    let bin = processes::our_binary("hil-controlplane", env!("CARGO_BIN_EXE_hil-controlplane"));
    let kubectl = ControlPlaneBinaries::locate()
        .unwrap_or_else(|e| panic!("{e}"))
        .kubectl;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cp");
    let mut child = KillOnDrop::spawn({
        let mut c = Command::new(&bin);
        c.arg("--dir").arg(&d).stdout(Stdio::null());
        c
    });
    let ready = d.join("ready");
    child = tokio::task::spawn_blocking(move || {
        processes::wait_for_file(&mut child, &ready, Duration::from_secs(180));
        child
    })
    .await
    .unwrap();
    let k = Kubectl::new(&kubectl, &d.join("admin.kubeconfig"), None);
    let nodes = k.run(&["get", "nodes"]).await;
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&nodes.stderr),
        "No resources found\n"
    );
    let version = k.ok(&["version"]).await;
    assert!(
        version.contains(&format!("Server Version: {}\n", pinned_release())),
        "{version}"
    );
    assert_eq!(pinned_release(), "v1.37.2");

    // Its components, found by their command lines (which name files under `d`).
    let components = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    for program in components {
        let running = processes::processes_of(program, &d);
        assert_eq!(running.len(), 1, "its {program}: {running:?}");
    }
    let (status, _child) = tokio::task::spawn_blocking(move || {
        let status = child.terminate(Duration::from_secs(30));
        (status, child)
    })
    .await
    .unwrap();
    let status = status.expect("hil-controlplane exits on SIGTERM within 30 s");
    assert!(status.success(), "{status}");
    assert!(!d.join("ready").exists(), "it removes its ready file");
    for program in components {
        let left = processes::processes_of(program, &d);
        assert!(left.is_empty(), "{program} left running: {left:?}");
    }
}
