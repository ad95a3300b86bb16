//! The static armv7 agent (`armv7-unknown-linux-musleabihf`, standard library built from
//! source by scripts/build-agent-armv7.sh) under qemu-arm user-mode emulation, on the
//! real control plane and a real Mosquitto: it starts, connects to the gateway, its Node
//! turns Ready with `kubernetes.io/arch=arm`, and it runs a pod on Podman whose
//! `kubectl logs` come back.
//!
//! Needs `EDGE_TEST_AGENT_ARMV7` (scripts/test.sh sets it):
//! `export EDGE_TEST_AGENT_ARMV7=$(bash scripts/build-agent-armv7.sh --profile armv7-test)`

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use edge_hil_tests::scenario::{create, is_ready, node_ready, nodes, pod_manifest, wait_pod};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

const DEVICE: &str = "armv7-pi2-01";
/// qemu-arm emulates every instruction: the agent's start is slower than natively.
const JOIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn armv7_agent_under_qemu_joins_and_runs_a_pod_whose_logs_come_back() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Mosquitto).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(DEVICE, &[("board", "pi-2")], AgentBuild::Armv7Qemu)?;

    let node = wait_ready_while_running(&mut stack).await?;
    let labels = node.labels();
    ensure!(
        labels.get("kubernetes.io/arch").map(String::as_str) == Some("arm"),
        "the armv7 agent reports arch {:?}",
        labels.get("kubernetes.io/arch")
    );
    ensure!(labels.get("board").map(String::as_str) == Some("pi-2"));
    let info = node.status.as_ref().and_then(|s| s.node_info.clone());
    ensure!(
        info.as_ref().map(|i| i.architecture.as_str()) == Some("arm"),
        "nodeInfo: {info:?}"
    );

    let on_device = [("kubernetes.io/hostname", DEVICE)];
    let pod = pod_manifest(
        "armv7-hello",
        &on_device,
        true,
        "Always",
        "echo from-the-armv7-agent; exec sleep 3600",
    );
    create(&stack, &pod).await?;
    let running = wait_pod(
        &stack,
        "armv7-hello",
        "pod Running and Ready on the armv7 device",
        Duration::from_secs(120),
        is_ready,
    )
    .await?;
    let placed = running.spec.as_ref().and_then(|s| s.node_name.as_deref());
    ensure!(placed == Some(DEVICE), "placed on {placed:?}");

    let ns = stack.namespace.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = stack.kubectl.run(&["logs", "-n", &ns, "armv7-hello"]);
        match logs {
            Ok(l) if l.contains("from-the-armv7-agent") => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            other => bail!(
                "kubectl logs did not return the container's output: {other:?}\n{}",
                stack.logs()
            ),
        }
    }
    stack
        .kubectl
        .run(&["delete", "pod", "-n", &ns, "armv7-hello", "--wait=true"])?;
    Ok(())
}

/// Waits for the armv7 Node to turn Ready, failing at once with the agent's log when
/// the agent exits (e.g. qemu cannot run the binary).
async fn wait_ready_while_running(stack: &mut Stack) -> Result<Node> {
    let api = nodes(stack).await?;
    let deadline = Instant::now() + JOIN;
    loop {
        let agent = stack.agent(DEVICE)?;
        if !agent.is_running() {
            bail!(
                "the armv7 agent exited (status {:?}) before its Node turned Ready:\n{}",
                agent.exit_code(),
                agent.log()
            );
        }
        let last = match api.get_opt(DEVICE).await {
            Ok(Some(n)) if node_ready(&n).as_deref() == Some("True") => return Ok(n),
            Ok(Some(n)) => format!("Ready={:?}", node_ready(&n)),
            Ok(None) => "node not registered".to_owned(),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!(
                "node {DEVICE} not Ready within {} s ({last})\n{}",
                JOIN.as_secs(),
                stack.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
