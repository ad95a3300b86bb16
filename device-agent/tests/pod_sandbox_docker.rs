//! The pod sandbox on the real Docker Engine (Debian's docker.io, started by
//! `scripts/test-env.sh` without a bridge, so containers have loopback only): the
//! containers of a pod share the infra container's network, IPC and UTS namespaces
//! there too, and a container restart keeps them.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use edge_protocol::PodStatus;

const T: Duration = Duration::from_secs(90);

/// The Docker Engine socket; the test fails (never skips) without it.
fn docker_engine() -> String {
    require_env(
        "EDGE_TEST_DOCKER_ENGINE_HOST",
        "the real Docker Engine's socket (`eval \"$(bash scripts/test-env.sh)\"` starts dockerd; \
         `scripts/install-test-deps.sh` installs docker.io)",
    )
}

fn docker(args: &[&str]) -> String {
    let host = docker_engine();
    let out = Command::new("docker")
        .arg("-H")
        .arg(&host)
        .args(args)
        .output()
        .expect("the docker CLI (Debian package docker.io)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (id, name, running) of the containers labelled with this pod uid.
fn containers(uid: &str) -> Vec<(String, String, bool)> {
    docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label=io.edge-kube.pod-uid={uid}"),
        "--format",
        "{{.ID}} {{.Names}} {{.State}}",
    ])
    .lines()
    .filter_map(|l| {
        let mut it = l.split_whitespace();
        Some((
            it.next()?.to_owned(),
            it.next()?.to_owned(),
            it.next()? == "running",
        ))
    })
    .collect()
}

fn running_id(uid: &str, container: &str) -> Option<String> {
    containers(uid)
        .into_iter()
        .find(|(_, name, running)| *running && name.contains(&format!("_{container}_")))
        .map(|(id, _, _)| id)
}

/// Removes the pod's containers from the Docker Engine when dropped.
struct DockerCleanup(String);

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for (id, _, _) in containers(&self.0) {
            docker(&["rm", "-f", &id]);
        }
    }
}

fn restarts(s: &PodStatus, container: &str) -> u32 {
    s.containers
        .iter()
        .find(|c| c.name == container)
        .map_or(0, |c| c.restart_count)
}

async fn wait_log(id: &str, needle: &str) {
    wait_until(T, &format!("{needle:?} in the log of {id}"), || {
        docker(&["logs", id]).contains(needle)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_pod_network_on_the_docker_engine() {
    let engine = docker_engine();
    let port = start_rumqttd();
    let device = "pod-sandbox-docker-1";
    let dir = tempfile::tempdir().unwrap();
    let uid = unique_uid("psbxd1");
    let _cleanup = DockerCleanup(uid.clone());
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start_on_runtime(
        vec![agent_binary()],
        device,
        port,
        dir.path(),
        &[],
        &engine,
    );
    gw.wait_agent_online().await;
    let name = "docker-sandbox-pod";
    gw.desire(1, vec![localhost_pod(&uid, name, "hello-on-docker")])
        .await;
    gw.wait_status(&uid, "running on Docker", T, is_running)
        .await;

    let client = running_id(&uid, "client").unwrap();
    wait_log(&client, "hello-on-docker").await;
    wait_log(&client, &format!("host={name}")).await;
    let infra = running_id(&uid, "POD").expect("an infra container");
    let mode = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.NetworkMode}} {{.HostConfig.IpcMode}}",
        &client,
    ]);
    assert_eq!(
        mode.trim(),
        format!("container:{infra} container:{infra}"),
        "the client joins the infra container's network and IPC"
    );

    // A container restart keeps the sandbox (and so the loopback the server is on).
    docker(&["kill", &client]);
    gw.wait_status(&uid, "client restarted", T, |s| {
        is_running(s) && restarts(s, "client") >= 1
    })
    .await;
    assert_eq!(running_id(&uid, "POD").as_deref(), Some(infra.as_str()));
    let client = running_id(&uid, "client").unwrap();
    wait_log(&client, "hello-on-docker").await;

    let mut deleting = localhost_pod(&uid, name, "hello-on-docker");
    deleting.deletion_grace_period_seconds = Some(1);
    gw.desire(2, vec![deleting]).await;
    gw.wait_status(&uid, "removed", T, |s| s.removed).await;
    assert!(containers(&uid).is_empty());
}
