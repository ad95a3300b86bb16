//! `kubectl debug` of a device pod: an ephemeral container added through
//! `pods/ephemeralcontainers`, run by the agent in the target's PID namespace and the
//! pod's network, reported in `ephemeralContainerStatuses`, its logs readable, and
//! attached to with stdin.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use edge_hil_tests::scenario::{StackOn, create, is_ready, pod_manifest, wait_pod};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{ClientProtocol, device_id, kubectl, run, stack_with_shell, text};

fn ephemeral_status<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .ephemeral_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

/// Lists every process the container sees (busybox here has no `ps`), fetches the
/// target's web page over loopback, then idles a little.
const DEBUG_SCRIPT: &str = "for p in /proc/[0-9]*; do echo \"proc ${p#/proc/}: $(tr '\\0' ' ' < $p/cmdline)\"; done; \
     wget -qO- http://127.0.0.1:8080/index.html; sleep 6";

pub async fn debug_with_ephemeral_container(on: StackOn) -> Result<()> {
    let protocol = ClientProtocol::WebSocket;
    let stack = stack_with_shell(on, &device_id("debug", on, protocol)).await?;
    let ns = stack.namespace.clone();
    // The target: a web server and a process with a name to look for.
    create(
        &stack,
        &pod_manifest(
            "target",
            &[],
            true,
            "Always",
            "mkdir -p /w; echo page-of-target > /w/index.html; httpd -p 8080 -h /w; sleep 3601",
        ),
    )
    .await?;
    wait_pod(
        &stack,
        "target",
        "target running",
        Duration::from_secs(60),
        is_ready,
    )
    .await?;

    let debug = |args: &[&str], stdin: Option<&[u8]>| {
        let mut cmd = kubectl(&stack, protocol);
        cmd.args(["debug", "-n", &ns, "target"])
            .args([
                "--image=localhost/busybox:test",
                "--image-pull-policy=Never",
            ])
            .args(["--target=main"])
            .args(args);
        run(cmd, stdin)
    };
    let out = debug(
        &[
            "--attach=false",
            "-c",
            "debugger",
            "--",
            "sh",
            "-c",
            DEBUG_SCRIPT,
        ],
        None,
    )?;
    ensure!(out.status.success(), "kubectl debug: {out:?}");
    wait_pod(
        &stack,
        "target",
        "debugger running",
        Duration::from_secs(60),
        |p| {
            ephemeral_status(p, "debugger")
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", stack.logs()))?;

    // Its output: the target's `sleep 3601` among the processes (one PID namespace),
    // and the target's page on 127.0.0.1 (one network namespace).
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let out = stack
            .kubectl
            .output(&["logs", "-n", &ns, "target", "-c", "debugger"])?;
        let logs = text(&out.stdout);
        if logs.contains("page-of-target") || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(
        logs.contains("sleep 3601"),
        "the debugger must see the target's processes:\n{logs}\n{}",
        stack.logs()
    );
    ensure!(
        logs.contains("page-of-target"),
        "the debugger must reach the target on loopback:\n{logs}"
    );

    // It ends and stays terminated (never restarted); the pod runs on, still ready.
    let done = wait_pod(
        &stack,
        "target",
        "debugger terminated",
        Duration::from_secs(60),
        |p| {
            ephemeral_status(p, "debugger")
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.terminated.is_some())
        },
    )
    .await?;
    let status = ephemeral_status(&done, "debugger")
        .cloned()
        .unwrap_or_default();
    let terminated = status
        .state
        .clone()
        .and_then(|s| s.terminated)
        .unwrap_or_default();
    ensure!(
        terminated.exit_code == 0 && terminated.reason.as_deref() == Some("Completed"),
        "{terminated:?}"
    );
    ensure!(status.restart_count == 0 && !status.ready, "{status:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = wait_pod(
        &stack,
        "target",
        "target ready",
        Duration::from_secs(5),
        is_ready,
    )
    .await?;
    ensure!(
        ephemeral_status(&later, "debugger")
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.terminated.is_some()),
        "the debugger must stay terminated: {:?}",
        later.status
    );

    // Interactive: stdin piped through `kubectl debug -i` reaches the new container.
    let out = debug(
        &["-i", "-c", "shell-in", "--", "sh"],
        Some(b"echo hi-from-$((40+2)); exit\n"),
    )?;
    ensure!(
        out.status.success() && text(&out.stdout).contains("hi-from-42"),
        "kubectl debug -i: {out:?}\n{}",
        stack.logs()
    );
    Ok(())
}
