//! The static aarch64 agent under qemu user-mode emulation: connects, reports
//! architecture arm64, and runs a pod through the host's Podman.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use edge_protocol::{Message, UpChannel};

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aarch64_agent_under_qemu_reports_arm64_and_runs_a_pod() {
    let binary = require_env(
        "EDGE_TEST_AGENT_AARCH64",
        "path of the static aarch64 agent (cargo build --release -p edge-agent --target aarch64-unknown-linux-musl)",
    );
    assert!(
        std::path::Path::new(&binary).exists(),
        "EDGE_TEST_AGENT_AARCH64={binary} does not exist: build it with \
         `cargo build --release -p edge-agent --target aarch64-unknown-linux-musl`"
    );
    require_tool("/usr/bin/qemu-aarch64-static", "qemu-user-static");
    let _ = docker_host();
    let port = start_rumqttd();
    let dir = tempfile::tempdir().unwrap();
    let device = "qemu-arm64-1";
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start_with(
        vec!["/usr/bin/qemu-aarch64-static".into(), binary],
        device,
        port,
        dir.path(),
        &[],
    );
    wait_until(T, "node report from the arm64 agent", || {
        gw.count(UpChannel::Hello) > 0
    })
    .await;
    let hello = gw
        .messages()
        .into_iter()
        .find_map(|r| match r.message {
            Message::NodeReport(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(hello.architecture, "arm64");
    assert_eq!(hello.operating_system, "linux");
    gw.wait_agent_online().await;
    let uid = unique_uid("arm64");
    let _cleanup = PodCleanup(vec![uid.clone()]);
    gw.desire(
        1,
        vec![busybox_pod(
            &uid,
            "arm",
            "echo from-arm64-agent; exec sleep 1000",
        )],
    )
    .await;
    let s = gw.wait_status(&uid, "running", T, is_running).await;
    assert_eq!(s.containers[0].restart_count, 0);
    assert_eq!(podman_containers(&uid).len(), 1);
    gw.desire(2, vec![]).await;
    wait_until(T, "container removed", || {
        podman_containers(&uid).is_empty()
    })
    .await;
}
