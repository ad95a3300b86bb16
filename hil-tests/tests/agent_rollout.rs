//! Agent rollouts end to end: the gateway (`--agent-rollout-namespace`) rolls a signed
//! agent release out to three real agents under `edge-agent supervise`, over MQTT, as the
//! ConfigMap `edge-agent-rollout` declares, on Mosquitto with the real control plane (the
//! gateway under its shipped ClusterRole) and on the embedded broker with the emulator:
//! - a good build, added with `edge-gateway agent-release add` (signed with OpenSSL as
//!   docs/deploy.md shows), reaches all three devices, on the embedded broker one at a
//!   time (maxUnavailable 1: the gateway's log orders each device once, by name, and the
//!   next only after the previous one's agent was committed), on Mosquitto all at once;
//!   each Node's VERSION shows it, each has one `AgentUpdateStarted` and one
//!   `AgentUpdated` Event, and the rollout's status says Complete;
//! - a bad build (never reports healthy) rolls back on the first device by itself, the
//!   rollout pauses (status Paused, the device listed with why, an
//!   `AgentUpdateRolledBack` Event) and the other two are never ordered;
//! - a pod's container on the first device keeps its id and start time through the update
//!   and the rollback, with no restart.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use edge_hil_tests::controlplane::GATEWAY_NAMESPACE;
use edge_hil_tests::ota_signing::{FleetSigningKey, run};
use edge_hil_tests::scenario::{
    is_ready, nodes, restart_count, same_container, sleeping_pod_on, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, STACK_LABEL, Stack, StackOptions, binary,
};
use edge_hil_tests::status_sequence::strip_ansi;
use k8s_openapi::api::core::v1::Node;

const GOOD: &str = "9.0.0-good";
const BAD: &str = "9.1.0-bad";

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_on_mosquitto_and_the_real_control_plane_updates_all_and_pauses_on_a_rollback()
-> Result<()> {
    // all three at once here (the waves are the planner's, checked one at a time on the
    // embedded broker): a download over Mosquitto is slow (docs/benchmarks.md)
    scenario(
        BrokerKind::Mosquitto,
        ClusterBackend::ControlPlane,
        "rollout-mq",
        3,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_on_the_embedded_broker_goes_in_waves_and_pauses_on_a_rollback() -> Result<()> {
    scenario(
        BrokerKind::Embedded,
        ClusterBackend::Emulator,
        "rollout-emb",
        1,
    )
    .await
}

/// The Kubernetes name of this machine's architecture, as agents report it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// The progress annotation of a Node: (version, phase, message).
fn progress(node: &Node) -> Option<(String, String, String)> {
    let value = node
        .metadata
        .annotations
        .as_ref()?
        .get("edge-kube.io/agent-update")?;
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Some((s("version"), s("phase"), s("message")))
}

fn kubelet_version(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default()
}

fn rollout_status(stack: &Stack, namespace: &str) -> Result<serde_json::Value> {
    let out = stack.kubectl.run(&[
        "-n",
        namespace,
        "get",
        "configmap",
        "edge-agent-rollout",
        "-o",
        r"jsonpath={.metadata.annotations.edge-kube\.io/rollout-status}",
    ])?;
    Ok(serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null))
}

/// The stack's device Nodes, by name.
async fn device_nodes(stack: &Stack) -> Result<Vec<Node>> {
    let api = nodes(stack).await?;
    let listed = api
        .list(
            &kube::api::ListParams::default().labels(&format!("{STACK_LABEL}={}", stack.namespace)),
        )
        .await?;
    let mut items = listed.items;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(items)
}

/// The gateway's decisions about `version`, in order: (device, "ordered" or the phase a
/// device's status moved to), from its log.
fn decisions(stack: &Stack, version: &str) -> Vec<(String, String)> {
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_owned())
    };
    let log = strip_ansi(&stack.gateway.log());
    log.lines()
        .filter(|l| field(l, "version=").as_deref() == Some(version))
        .filter_map(|l| {
            let device = field(l, "device=")?;
            if l.contains("agent update ordered") {
                Some((device, "ordered".to_owned()))
            } else if l.contains("agent update progress") {
                Some((device, field(l, "phase=")?))
            } else {
                None
            }
        })
        .collect()
}

/// Every device ordered once, and never more than `max_unavailable` updating at once
/// (with 1: each only after the device before it ended its update).
fn ordered_in_waves(decisions: &[(String, String)], max_unavailable: usize) -> Result<Vec<String>> {
    let mut ordered = Vec::new();
    let mut busy: Vec<&str> = Vec::new();
    for (device, what) in decisions {
        match what.as_str() {
            "ordered" => {
                ensure!(
                    !ordered.contains(device),
                    "{device} ordered twice: {decisions:?}"
                );
                ensure!(
                    busy.len() < max_unavailable,
                    "{device} ordered while {busy:?} were updating: {decisions:?}"
                );
                busy.push(device);
                ordered.push(device.clone());
            }
            "Committed" | "RolledBack" | "Failed" => busy.retain(|b| b != device),
            _ => {}
        }
    }
    Ok(ordered)
}

/// Waits for the rollout's status phase; the status. (The waves are checked on the
/// gateway's own decisions: the Nodes' annotations of two devices are written by
/// different workers and may land in either order.)
async fn watch_rollout(
    stack: &Stack,
    namespace: &str,
    version: &str,
    phase: &str,
) -> Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(420);
    loop {
        let nodes = device_nodes(stack).await?;
        let status = rollout_status(stack, namespace)?;
        if status["version"] == version && status["phase"] == phase {
            return Ok(status);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the rollout of {version} is not {phase}: {status}\nnodes: {:?}\n{}",
            nodes
                .iter()
                .map(|n| (n.metadata.name.clone(), kubelet_version(n), progress(n)))
                .collect::<Vec<_>>(),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A copy of the host agent without its debug information (a faster download), signed as
/// `version` and added to the gateway's releases.
fn add_release(
    stack: &Stack,
    key: &FleetSigningKey,
    work: &Path,
    name: &str,
    contents: Option<&[u8]>,
    version: &str,
) -> Result<()> {
    let path = work.join(name);
    match contents {
        Some(bytes) => {
            std::fs::write(&path, bytes)?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        None => {
            run(Command::new("strip")
                .arg("--strip-debug")
                .arg(binary("edge-agent")?)
                .arg("-o")
                .arg(&path))?;
        }
    }
    let signature = key.sign(&path, version)?;
    let out = run(Command::new(binary("edge-gateway")?)
        .args(["agent-release", "add", "--store-dir"])
        .arg(stack.dir().join("gateway-store"))
        .args(["--version", version, "--arch", host_arch(), "--binary"])
        .arg(&path)
        .arg("--signature")
        .arg(&signature))?;
    ensure!(out.contains(&format!("added agent {version}")), "{out}");
    Ok(())
}

async fn scenario(
    broker: BrokerKind,
    backend: ClusterBackend,
    prefix: &str,
    max_unavailable: usize,
) -> Result<()> {
    let work = tempfile::tempdir()?;
    let key = FleetSigningKey::generate(work.path())?;
    // the gateway's own namespace: its Role lets it write the rollout's status there only
    let rollout_ns = GATEWAY_NAMESPACE.to_owned();
    let mut options = StackOptions::fast(broker).on(backend);
    options.gateway_args = vec!["--agent-rollout-namespace".into(), rollout_ns.clone()];
    // the key `edge-agent install --bundle` pins (agent_ota checks that path)
    options.agent_args = vec!["--ota-public-key".into(), key.public.display().to_string()];
    let mut stack = Stack::start(options).await?;
    let store = stack.dir().join("gateway-store");
    std::fs::create_dir_all(store.join("enrollment"))?;
    std::fs::copy(&key.public, store.join("enrollment/ota-signing.pub"))?;

    let devices: Vec<String> = (1..=3).map(|i| format!("{prefix}-{i}")).collect();
    for device in &devices {
        stack.start_agent(device, &[], AgentBuild::HostSupervised)?;
    }
    for device in &devices {
        wait_node_ready(&stack, device, "True", Duration::from_secs(90)).await?;
    }
    let first = &devices[0];
    let pod_name = format!("{first}-pod");
    let (pod_uid, before) = sleeping_pod_on(&stack, first).await?;

    add_release(&stack, &key, work.path(), "edge-agent-good", None, GOOD)?;
    stack.kubectl.ensure_namespace(&rollout_ns)?;
    let selector = format!("nodeSelector={STACK_LABEL}={}", stack.namespace);
    stack.kubectl.run(&[
        "-n",
        &rollout_ns,
        "create",
        "configmap",
        "edge-agent-rollout",
        &format!("--from-literal=version={GOOD}"),
        &format!("--from-literal=maxUnavailable={max_unavailable}"),
        "--from-literal=healthDeadline=60s",
        &format!("--from-literal={selector}"),
    ])?;
    let started = std::time::Instant::now();
    let status = watch_rollout(&stack, &rollout_ns, GOOD, "Complete").await?;
    eprintln!("{prefix}: {GOOD} on 3 devices in {:?}", started.elapsed());
    ensure!(status["updated"] == 3 && status["failed"] == 0, "{status}");
    let mut ordered = ordered_in_waves(&decisions(&stack, GOOD), max_unavailable)?;
    if max_unavailable > 1 {
        ordered.sort();
    }
    ensure!(
        ordered == devices,
        "each device ordered once, by name: {ordered:?}\n{}",
        stack.logs()
    );
    for node in device_nodes(&stack).await? {
        let name = node.metadata.name.clone().unwrap_or_default();
        ensure!(
            kubelet_version(&node).ends_with(&format!("+edge-agent.{GOOD}")),
            "{name}: {}",
            kubelet_version(&node)
        );
        for reason in ["AgentUpdateStarted", "AgentUpdated"] {
            let counts = stack.kubectl.run(&[
                "get",
                "events",
                "-n",
                "default",
                "--field-selector",
                &format!("involvedObject.name={name},reason={reason}"),
                "-o",
                "jsonpath={range .items[*]}{.count}{\"\\n\"}{end}",
            ])?;
            ensure!(
                counts.trim() == "1",
                "{name}: {reason} Events (their counts) {counts:?}"
            );
        }
    }
    wait_node_ready(&stack, first, "True", Duration::from_secs(30)).await?;
    same_container(&stack, &pod_uid, &before, "update")?;

    // a bad build: the first device rolls back by itself, the rollout pauses there
    add_release(
        &stack,
        &key,
        work.path(),
        "edge-agent-bad",
        Some(b"#!/bin/sh\n# a broken agent: never connects\nexec sleep 100000\n"),
        BAD,
    )?;
    stack.kubectl.run(&[
        "-n",
        &rollout_ns,
        "patch",
        "configmap",
        "edge-agent-rollout",
        "--type=merge",
        "-p",
        &format!(r#"{{"data":{{"version":"{BAD}","healthDeadline":"8s","maxUnavailable":"1"}}}}"#),
    ])?;
    let started = std::time::Instant::now();
    let status = watch_rollout(&stack, &rollout_ns, BAD, "Paused").await?;
    eprintln!("{prefix}: {BAD} paused in {:?}", started.elapsed());
    ensure!(status["failed"] == 1 && status["updated"] == 0, "{status}");
    let ordered = ordered_in_waves(&decisions(&stack, BAD), 1)?;
    ensure!(ordered == [first.clone()], "after a rollback: {ordered:?}");
    let why = status["failures"][first.as_str()]
        .as_str()
        .unwrap_or_default();
    ensure!(why.contains("did not report healthy"), "{status}");
    let nodes_now = device_nodes(&stack).await?;
    for node in &nodes_now {
        let name = node.metadata.name.clone().unwrap_or_default();
        let p = progress(node);
        if name == *first {
            ensure!(
                p.as_ref()
                    .is_some_and(|(v, ph, _)| v == BAD && ph == "rolledBack"),
                "{name}: {p:?}"
            );
        } else {
            ensure!(
                p.as_ref().is_none_or(|(v, _, _)| v != BAD),
                "{name} was ordered although the rollout paused: {p:?}"
            );
        }
        ensure!(
            kubelet_version(node).ends_with(&format!("+edge-agent.{GOOD}")),
            "{name} does not run the good build again: {}",
            kubelet_version(node)
        );
    }
    let rolled_back = stack.kubectl.run(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={first},reason=AgentUpdateRolledBack"),
        "-o",
        "jsonpath={.items[*].message}",
    ])?;
    ensure!(
        rolled_back.contains(BAD),
        "no rollback Event: {rolled_back:?}"
    );
    wait_node_ready(&stack, first, "True", Duration::from_secs(30)).await?;
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
    let forbidden = stack.forbidden_calls();
    ensure!(
        forbidden.is_empty(),
        "the gateway needed more than its ClusterRole: {forbidden:?}"
    );
    Ok(())
}
