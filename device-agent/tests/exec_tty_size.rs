//! A TTY exec's terminal size: on Podman a command that reads it at once (`stty size`)
//! sees the size the client sent (Podman takes it from the exec's start request,
//! `src/streams/exec_start_size.rs`, before the process runs). The test bed's Docker
//! Engine (Debian's docker.io 20.10, API 1.41) ignores an exec's `ConsoleSize` (API
//! 1.42+), so there the size arrives with the resize just after the start, as with the
//! docker CLI: checked a moment after the start. The agent binary against the embedded
//! rumqttd broker, the test playing the gateway.
#![allow(clippy::unwrap_used)]

mod common;
mod streams_gateway;

use std::process::Command;
use std::time::Duration;

use common::*;
use edge_protocol::{StdioSelection, StreamPod, StreamTarget, TerminalSize};
use streams_gateway::GatewayStream;

const T: Duration = Duration::from_secs(60);
/// As `kubectl exec -it` asks (Docker gives the TTY to stdin only when it is attached).
const TTY: StdioSelection = StdioSelection {
    stdin: true,
    stdout: true,
    stderr: false,
    tty: true,
};

/// Removes the containers of a pod from the Docker Engine at `.0`.
struct DockerEngineCleanup(String, String);

impl Drop for DockerEngineCleanup {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["-H", &self.0, "ps", "-aq", "--filter"])
            .arg(format!("label=io.edge-kube.pod-uid={}", self.1))
            .output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .args(["-H", &self.0, "rm", "-f", id])
                    .output();
            }
        }
    }
}

/// What `script` (ending in `stty size`) prints in a TTY exec of 30 rows, 100 columns,
/// five times, on the runtime at `runtime` (Podman: None).
async fn sizes(runtime: Option<&str>, device: &str, name: &str, script: &str) -> Vec<String> {
    let port = start_rumqttd();
    let dir = tempfile::tempdir().unwrap();
    let uid = unique_uid(name);
    let _podman_cleanup = PodCleanup(vec![uid.clone()]);
    let _docker_cleanup = runtime.map(|r| DockerEngineCleanup(r.to_owned(), uid.clone()));
    let gw = TestGateway::connect(port, device).await;
    let _agent = match runtime {
        Some(socket) => AgentProcess::start_on_runtime(
            vec![agent_binary()],
            device,
            port,
            dir.path(),
            &[],
            socket,
        ),
        None => AgentProcess::start(device, port, dir.path()),
    };
    gw.wait_agent_online().await;
    gw.desire(1, vec![busybox_pod(&uid, name, "exec sleep 3600")])
        .await;
    gw.wait_status(&uid, "running", T, is_running).await;
    let pod = StreamPod {
        pod_uid: uid.clone(),
        namespace: "default".into(),
        pod_name: name.into(),
    };
    let mut sizes = Vec::new();
    for i in 0..5 {
        let target = StreamTarget::Exec {
            pod: pod.clone(),
            container: "main".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            stdio: TTY,
        };
        let size = TerminalSize {
            width: 100,
            height: 30,
        };
        let st =
            GatewayStream::open(&gw, &format!("tty-{i}"), target, Some(size), 256 * 1024).await;
        let o = st.finish().await;
        assert_eq!(o.close.as_ref().unwrap().exit_code, Some(0), "{o:?}");
        sizes.push(o.stdout_text().trim().to_owned());
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_exec_starts_with_the_terminal_size() {
    let sizes = sizes(None, "exec-tty-size-podman", "ttysize", "stty size").await;
    assert!(sizes.iter().all(|s| s == "30 100"), "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_engine_exec_gets_the_terminal_size() {
    let engine = require_env(
        "EDGE_TEST_DOCKER_ENGINE_HOST",
        "the real Docker Engine's socket (`eval \"$(bash scripts/test-env.sh)\"` starts dockerd; \
         `scripts/install-test-deps.sh` installs docker.io)",
    );
    let script = "sleep 0.5; stty size";
    let sizes = sizes(Some(&engine), "exec-tty-size-docker", "ttysized", script).await;
    assert!(sizes.iter().all(|s| s == "30 100"), "{sizes:?}");
}
