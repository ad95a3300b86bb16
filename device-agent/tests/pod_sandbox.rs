//! The pod sandbox on real Podman: the agent binary gives each pod an infra container
//! whose network, IPC and UTS namespaces the pod's containers share, as the kubelet.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use edge_protocol::PodStatus;

const T: Duration = Duration::from_secs(90);

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The id of the pod's one container whose name holds `_<container>_` and that runs.
fn running_id(uid: &str, container: &str) -> Option<String> {
    podman_containers(uid)
        .into_iter()
        .find(|(_, name, state)| {
            name.contains(&format!("_{container}_"))
                && (state == "Up" || state.eq_ignore_ascii_case("running"))
        })
        .map(|(id, _, _)| id)
}

fn restart_count(s: &PodStatus, container: &str) -> u32 {
    s.containers
        .iter()
        .find(|c| c.name == container)
        .map_or(0, |c| c.restart_count)
}

async fn wait_log(container_id: &str, needle: &str) {
    wait_until(
        T,
        &format!("{needle:?} in the log of {container_id}"),
        || {
            let out = Command::new("podman")
                .args(["logs", container_id])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains(needle)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_pod_network_and_keep_it_across_restarts() {
    let port = start_rumqttd();
    let device = "pod-sandbox-1";
    // Declared first, dropped last: the agent is gone before the containers are removed.
    let uid = unique_uid("psbx1");
    let _cleanup = PodCleanup(vec![uid.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::connect(port, device).await;
    let mut agent = AgentProcess::start(device, port, dir.path());
    gw.wait_agent_online().await;
    let name = "sandbox-pod";
    gw.desire(1, vec![localhost_pod(&uid, name, "hello-over-loopback")])
        .await;
    let status = gw.wait_status(&uid, "running", T, is_running).await;

    // The client reaches the server on loopback, and its hostname is the pod name.
    let client = running_id(&uid, "client").unwrap();
    wait_log(&client, "hello-over-loopback").await;
    wait_log(&client, &format!("host={name}")).await;

    // One infra container, and the pod IP is its address.
    let infra = running_id(&uid, "POD").expect("an infra container");
    let infra_ip = podman(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        &infra,
    ]);
    let pod_ip = status.pod_ip.clone().expect("a pod IP");
    assert_eq!(pod_ip, infra_ip.trim());
    // The app containers have no network of their own: they are in the infra's.
    let mode = podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.NetworkMode}}",
        &client,
    ]);
    assert!(mode.contains(&infra), "client network mode: {mode}");

    // A container restart keeps the pod's network: same infra, same IP.
    podman(&["kill", &client]);
    let status = gw
        .wait_status(&uid, "client restarted", T, |s| {
            is_running(s) && restart_count(s, "client") >= 1
        })
        .await;
    assert_eq!(status.pod_ip.as_deref(), Some(pod_ip.as_str()));
    assert_eq!(running_id(&uid, "POD").as_deref(), Some(infra.as_str()));
    let client = running_id(&uid, "client").unwrap();
    wait_log(&client, "hello-over-loopback").await;

    // A restarted agent adopts the sandbox and the containers (labels): nothing is
    // recreated.
    let ids = |uid: &str| {
        let mut v: Vec<(String, String)> = podman_containers(uid)
            .into_iter()
            .map(|(id, name, _)| (name, id))
            .collect();
        v.sort();
        v
    };
    let before = ids(&uid);
    agent.kill9();
    agent.spawn();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(ids(&uid), before, "the agent restart recreated containers");
    let adopted = gw.latest_status(&uid).unwrap();
    assert!(is_running(&adopted));
    assert_eq!(adopted.pod_ip.as_deref(), Some(pod_ip.as_str()));

    // The infra container dies: a new sandbox, and every container is brought up in it.
    let web_restarts = restart_count(&status, "web");
    podman(&["kill", &infra]);
    let status = gw
        .wait_status(&uid, "all containers in a new sandbox", T, |s| {
            is_running(s) && restart_count(s, "web") > web_restarts
        })
        .await;
    let new_infra = running_id(&uid, "POD").unwrap();
    assert_ne!(new_infra, infra);
    assert!(status.pod_ip.is_some());
    let client = running_id(&uid, "client").unwrap();
    wait_log(&client, "hello-over-loopback").await;
    assert!(
        gw.event_reasons(&uid).iter().any(|r| r == "Killing"),
        "events: {:?}",
        gw.event_reasons(&uid)
    );

    // Deleted: everything goes, the infra container included.
    let mut deleting = localhost_pod(&uid, name, "hello-over-loopback");
    deleting.deletion_grace_period_seconds = Some(1);
    gw.desire(2, vec![deleting]).await;
    gw.wait_status(&uid, "removed", T, |s| s.removed).await;
    assert!(podman_containers(&uid).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pods_have_no_infra_container() {
    let port = start_rumqttd();
    let device = "pod-sandbox-2";
    // Declared first, dropped last: the agent is gone before the containers are removed.
    let uid = unique_uid("psbx2");
    let _cleanup = PodCleanup(vec![uid.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start(device, port, dir.path());
    gw.wait_agent_online().await;
    gw.desire(1, vec![busybox_pod(&uid, "hostnet-pod", "exec sleep 1000")])
        .await;
    gw.wait_status(&uid, "running", T, is_running).await;
    let names: Vec<String> = podman_containers(&uid)
        .into_iter()
        .map(|(_, n, _)| n)
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(!names[0].contains("_POD_"));
}
