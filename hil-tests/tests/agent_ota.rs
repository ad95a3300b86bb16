//! Agent updates A/B on a device, with real agents under `edge-agent supervise`, a pod on
//! Podman, on the embedded broker and on Mosquitto (generated config):
//! - a good build (the agent binary from the build, signed with OpenSSL as docs/deploy.md
//!   shows) staged with `edge-agent ota stage` is started on trial, reports healthy and is
//!   committed: the agent now runs from slot `a`, the Node stays Ready;
//! - a bad build (a signed program that never reports healthy) is killed at its deadline
//!   and rolled back by the supervisor alone: the agent of slot `a` runs again, connected;
//! - through both swaps the pod's container keeps its id and its start time, and its
//!   restart count stays 0 (the agents adopt it);
//! - the public key is the one `edge-gateway enroll` pinned into the device bundle and
//!   `edge-agent install --bundle` installed; a binary whose signature does not match, or
//!   a device with no pinned key, is refused and nothing is staged;
//! - a supervisor killed outright takes its agent with it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use edge_hil_tests::ota_signing::{FleetSigningKey, run};
use edge_hil_tests::scenario::{
    is_ready, restart_count, same_container, sleeping_pod_on, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, Stack, StackOptions, binary, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn ota_on_the_embedded_broker_commits_a_good_build_and_rolls_back_a_bad_one() -> Result<()> {
    ota_scenario(BrokerKind::Embedded, "ota-emb-dev").await
}

#[tokio::test(flavor = "multi_thread")]
async fn ota_on_mosquitto_commits_a_good_build_and_rolls_back_a_bad_one() -> Result<()> {
    ota_scenario(BrokerKind::Mosquitto, "ota-mq-dev").await
}

/// The fleet's public key as enrollment pins it: placed in the gateway store, copied by
/// `edge-gateway enroll` into the bundle, installed by `edge-agent install --bundle`; the
/// installed file.
fn pinned_at_enrollment(work: &Path, device: &str, public: &Path) -> Result<PathBuf> {
    let store = work.join("gateway-store");
    std::fs::create_dir_all(store.join("enrollment"))?;
    std::fs::copy(public, store.join("enrollment/ota-signing.pub"))?;
    let bundle = work.join("bundle");
    let out = run(Command::new(binary("edge-gateway")?)
        .args([
            "enroll",
            device,
            "--broker-url",
            "mqtts://gw:8883",
            "--store-dir",
        ])
        .arg(&store)
        .arg("--out-dir")
        .arg(&bundle))?;
    ensure!(out.contains("pinned the agent-update key"), "{out}");
    let root = work.join("device-root");
    run(Command::new(binary("edge-agent")?)
        .args(["install", "--bundle"])
        .arg(&bundle)
        .arg("--prefix")
        .arg(&root))?;
    let installed = root.join("etc/edge-agent/ota-signing.pub");
    ensure!(
        std::fs::read(&installed)? == std::fs::read(public)?,
        "the installed key is not the fleet's"
    );
    Ok(installed)
}

/// `edge-agent ota stage` (its output, success or not).
fn stage(
    ota_dir: &Path,
    public: &Path,
    binary_path: &Path,
    signature: &Path,
    version: &str,
    deadline: &str,
) -> Result<std::process::Output> {
    Ok(Command::new(binary("edge-agent")?)
        .args(["ota", "stage", "--ota-dir"])
        .arg(ota_dir)
        .arg("--public-key")
        .arg(public)
        .arg("--binary")
        .arg(binary_path)
        .arg("--signature")
        .arg(signature)
        .args(["--version", version, "--health-deadline", deadline])
        .output()?)
}

fn ota_state(ota_dir: &Path) -> Result<serde_json::Value> {
    let out = run(Command::new(binary("edge-agent")?)
        .args(["ota", "status", "--ota-dir"])
        .arg(ota_dir))?;
    Ok(serde_json::from_str(&out)?)
}

/// Waits until the OTA state's last outcome is `result` for `version`.
async fn outcome(
    stack: &Stack,
    ota_dir: &Path,
    result: &str,
    version: &str,
) -> Result<serde_json::Value> {
    let (result, version) = (result.to_owned(), version.to_owned());
    eventually(
        &format!("OTA outcome {result} of {version}"),
        Duration::from_secs(90),
        || {
            let state = ota_state(ota_dir).map_err(|e| e.to_string());
            let (result, version) = (result.clone(), version.clone());
            async move {
                let state = state?;
                let last = &state["last_outcome"];
                Ok(
                    (last["result"] == result.as_str() && last["version"] == version.as_str())
                        .then_some(state.clone()),
                )
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

/// The executable of the healthy agent that wrote the health file.
async fn healthy_agent_exe(stack: &Stack, ota_dir: &Path) -> Result<PathBuf> {
    let health = ota_dir.join("healthy");
    eventually("an agent reports healthy", Duration::from_secs(60), || {
        let health = health.clone();
        async move {
            let Ok(pid) = std::fs::read_to_string(&health) else {
                return Err("no health file".to_owned());
            };
            std::fs::read_link(format!("/proc/{}/exe", pid.trim()))
                .map(Some)
                .map_err(|e| format!("agent {pid}: {e}"))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

fn staged_ok(out: &std::process::Output) -> Result<()> {
    ensure!(
        out.status.success(),
        "edge-agent ota stage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn ota_scenario(broker: BrokerKind, device: &str) -> Result<()> {
    let mut stack = Stack::start(StackOptions::fast(broker)).await?;
    stack.start_agent(device, &[], AgentBuild::HostSupervised)?;
    wait_node_ready(&stack, device, "True", Duration::from_secs(60)).await?;
    let ota_dir = stack.agent(device)?.state_dir().join("ota");
    let installed = binary("edge-agent")?;
    ensure!(
        healthy_agent_exe(&stack, &ota_dir).await? == installed.canonicalize()?,
        "before any update the installed binary runs"
    );

    let pod_name = format!("{device}-pod");
    let (pod_uid, before) = sleeping_pod_on(&stack, device).await?;

    let work = stack.dir().join("ota-work");
    std::fs::create_dir_all(&work)?;
    let key = FleetSigningKey::generate(&work)?;
    let public = pinned_at_enrollment(&work, device, &key.public)?;

    // refused: no pinned key, and a signature of another binary
    let good = work.join("edge-agent-good");
    std::fs::copy(&installed, &good)?;
    let good_sig = key.sign(&good, "0.2.0-good")?;
    let out = stage(
        &ota_dir,
        &work.join("missing.pub"),
        &good,
        &good_sig,
        "0.2.0-good",
        "60s",
    )?;
    ensure!(!out.status.success(), "staged without a pinned key");
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("agent updates are refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let forged = work.join("edge-agent-forged");
    std::fs::write(&forged, b"#!/bin/sh\nexit 0\n")?;
    let out = stage(&ota_dir, &public, &forged, &good_sig, "0.2.0-good", "60s")?;
    ensure!(
        !out.status.success(),
        "staged a binary with another's signature"
    );
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !ota_dir.join("bin/a").exists(),
        "a refused binary reached a slot"
    );

    // a good build: committed
    let out = stage(&ota_dir, &public, &good, &good_sig, "0.2.0-good", "60s")?;
    staged_ok(&out)?;
    let state = outcome(&stack, &ota_dir, "committed", "0.2.0-good").await?;
    ensure!(state["current"] == "a", "{state}");
    ensure!(
        healthy_agent_exe(&stack, &ota_dir).await? == ota_dir.join("bin/a"),
        "the committed agent does not run from slot a"
    );
    wait_node_ready(&stack, device, "True", Duration::from_secs(30)).await?;
    same_container(&stack, &pod_uid, &before, "update")?;

    // a bad build: starts, never reports healthy, rolled back by the supervisor alone
    let bad = work.join("edge-agent-bad");
    std::fs::write(
        &bad,
        b"#!/bin/sh\n# a broken agent: never connects\nexec sleep 100000\n",
    )?;
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let bad_sig = key.sign(&bad, "0.3.0-bad")?;
    let out = stage(&ota_dir, &public, &bad, &bad_sig, "0.3.0-bad", "8s")?;
    staged_ok(&out)?;
    let state = outcome(&stack, &ota_dir, "rolledBack", "0.3.0-bad").await?;
    ensure!(state["current"] == "a", "{state}");
    ensure!(
        state["last_outcome"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("did not report healthy within 8 s")),
        "{state}"
    );
    ensure!(
        healthy_agent_exe(&stack, &ota_dir).await? == ota_dir.join("bin/a"),
        "the previous agent (slot a) is not back"
    );
    ensure!(
        stack.agent(device)?.is_running(),
        "the supervisor exited\n{}",
        stack.logs()
    );
    ensure!(
        stack
            .agent(device)?
            .log()
            .contains("agent update rolled back: the previous agent runs again"),
        "the rollback is not in the journal\n{}",
        stack.logs()
    );
    wait_node_ready(&stack, device, "True", Duration::from_secs(30)).await?;
    let pod = wait_pod(
        &stack,
        &pod_name,
        "Ready again",
        Duration::from_secs(30),
        is_ready,
    )
    .await?;
    ensure!(restart_count(&pod) == 0, "the container restarted");
    same_container(&stack, &pod_uid, &before, "rollback")?;

    // a supervisor killed outright takes its agent with it (no agent left to run beside
    // the one a restarted supervisor starts)
    let agent_pid = std::fs::read_to_string(ota_dir.join("healthy"))?;
    let agent_proc = PathBuf::from(format!("/proc/{}", agent_pid.trim()));
    ensure!(
        agent_proc.exists(),
        "the healthy agent {agent_pid} is not running"
    );
    stack.agent(device)?.kill9();
    eventually(
        "the agent ends with its supervisor",
        Duration::from_secs(30),
        || {
            let gone = !agent_proc.exists()
                || std::fs::read_to_string(agent_proc.join("stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                });
            async move { Ok(gone.then_some(())) }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    Ok(())
}
