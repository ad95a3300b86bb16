//! `activeDeadlineSeconds` on the real control plane: a pod on a device that runs
//! longer than its deadline ends as on a kubelet: `kubectl get pod` shows
//! `DeadlineExceeded`, phase Failed, an Event `DeadlineExceeded`, and it is not
//! restarted.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Result, ensure};
use edge_hil_tests::scenario::{
    create, phase, pod_manifest, restart_count, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions};

const DEVICE: &str = "pod-deadline-pi-01";

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_past_its_active_deadline_fails_with_deadline_exceeded() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let on_device = [("kubernetes.io/hostname", DEVICE)];
    let mut pod = pod_manifest("deadline", &on_device, true, "Always", "sleep 3600");
    pod.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
    create(&stack, &pod).await?;
    let ended = wait_pod(
        &stack,
        "deadline",
        "DeadlineExceeded",
        Duration::from_secs(60),
        |p| {
            phase(p) == "Failed"
                && p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("DeadlineExceeded")
        },
    )
    .await?;
    ensure!(
        ended.status.as_ref().and_then(|s| s.message.as_deref())
            == Some("Pod was active on the node longer than the specified deadline"),
        "{:?}",
        ended.status
    );
    let ns = stack.namespace.clone();
    let get = stack.kubectl.run(&["get", "pod", "-n", &ns, "deadline"])?;
    ensure!(get.contains("DeadlineExceeded"), "kubectl get pod: {get}");
    let events = stack.kubectl.run(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=deadline,reason=DeadlineExceeded",
        "-o",
        "jsonpath={.items[*].message}",
    ])?;
    ensure!(
        events.contains("longer than the specified deadline"),
        "events: {events}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api = edge_hil_tests::scenario::pods(&stack).await?;
    let p = api.get("deadline").await?;
    ensure!(
        phase(&p) == "Failed" && restart_count(&p) == 0,
        "not restarted: {:?}",
        p.status
    );
    Ok(())
}
