//! `kubectl top node` and `kubectl top pod` for a device, end to end: the real control
//! plane (v1.37.2) with the aggregation layer, the upstream metrics-server built from its
//! Go module, the gateway (embedded broker), a real agent on Podman running a busybox
//! pod that uses CPU and memory. The agent samples every 15 s (its default) and
//! publishes on `up/stats`; metrics-server scrapes the gateway's
//! `/metrics/resource/<node>` every 10 s. Also: the Summary API through the API
//! server's node proxy, and a device that goes away leaves `kubectl top` instead of
//! showing its last figures. The same in the sandbox, where the API emulator serves the
//! metrics API itself.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use edge_hil_tests::controlplane::MetricsServer;
use edge_hil_tests::controlplane::metrics_server;
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, Cluster, ClusterBackend, Stack, StackOptions, eventually,
};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const DEVICE: &str = "top-metrics-1";
const POD: &str = "top-busy";

fn image() -> String {
    std::env::var("EDGE_TEST_IMAGE").unwrap_or_else(|_| "localhost/busybox:test".to_owned())
}

/// A pod that holds about 8 MB in a shell variable and spins, limited to 200m CPU.
fn busy_pod(stack: &Stack) -> Pod {
    let (key, value) = stack.pod_node_selector();
    let script = "s=aaaaaaaa; while [ ${#s} -lt 8000000 ]; do s=\"$s$s\"; done; \
                  while true; do :; done";
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "nodeSelector": {key: value},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "spin",
                "image": image(),
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
            }],
        }
    }))
    .unwrap()
}

/// `kubectl top ...` rows (`--no-headers`), split on whitespace.
fn top(stack: &Stack, args: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    all.push("--no-headers");
    let out = stack.kubectl.output(&all).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect())
}

/// Waits until `kubectl top node` no longer shows `device` (its agent is gone, so its
/// figures are stale).
async fn node_drops_out(stack: &Stack, device: &str) -> Result<(), String> {
    eventually(
        "kubectl top node no longer shows the dead device",
        Duration::from_secs(90),
        || {
            let got = top(stack, &["node", device]);
            async move {
                match got {
                    Err(e) if e.contains("not available") || e.contains("not found") => {
                        Ok(Some(()))
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// The number in `250m`, `12Mi`.
fn amount(field: &str) -> u64 {
    field
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_top_shows_the_device_and_its_pod() -> Result<()> {
    // Fail loudly, before anything starts, when the binary was not built.
    metrics_server::locate().context("metrics-server")?;
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    let Cluster::ControlPlane(cp) = &stack.cluster else {
        return Err(anyhow!(
            "this test needs the real control plane (EDGE_E2E_KUBECONFIG is set)"
        ));
    };
    let cp = *cp;
    let dir = stack.dir().join("metrics-server");
    let ms = tokio::task::spawn_blocking(move || {
        MetricsServer::start(cp, &dir, Duration::from_secs(120))
    })
    .await??;

    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    let pods: Api<Pod> = Api::namespaced(stack.client().await?, &stack.namespace);
    pods.create(&PostParams::default(), &busy_pod(&stack))
        .await?;

    let logs = |stack: &Stack| {
        format!(
            "{}\n--- metrics-server ---\n{}",
            stack.logs(),
            tail(&ms.log(), 40)
        )
    };
    let node = eventually(
        "kubectl top node shows the device",
        Duration::from_secs(180),
        || {
            let got = top(&stack, &["node", DEVICE]);
            async move {
                let rows = got?;
                match rows.first() {
                    Some(r) if r.len() >= 5 && r[0] == DEVICE => Ok(Some(r.clone())),
                    _ => Err(format!("rows: {rows:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", logs(&stack)))?;
    eprintln!("kubectl top node {DEVICE}: {}", node.join(" "));
    // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
    ensure!(
        node[1].ends_with('m') && amount(&node[1]) > 0,
        "node CPU {node:?}"
    );
    ensure!(
        node[3].ends_with("Mi") && amount(&node[3]) > 0,
        "node memory {node:?}"
    );

    let namespace = stack.namespace.clone();
    let pod = eventually(
        "kubectl top pod shows the pod",
        Duration::from_secs(120),
        || {
            let got = top(&stack, &["pod", POD, "-n", &namespace]);
            async move {
                let rows = got?;
                match rows.first() {
                    // the spinning container uses about 200m once two samples are in
                    Some(r) if r.len() >= 3 && r[0] == POD && amount(&r[1]) > 0 => {
                        Ok(Some(r.clone()))
                    }
                    _ => Err(format!("rows: {rows:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", logs(&stack)))?;
    eprintln!("kubectl top pod {POD}: {}", pod.join(" "));
    // NAME CPU(cores) MEMORY(bytes): the 8 MB shell variable shows as about 8Mi (an idle
    // busybox sh is under 1Mi)
    ensure!(
        pod[1].ends_with('m') && amount(&pod[1]) <= 260,
        "pod CPU above its 200m limit: {pod:?}"
    );
    ensure!(
        pod[2].ends_with("Mi") && amount(&pod[2]) >= 4,
        "pod memory {pod:?}"
    );

    // The Summary API from the gateway's kubelet API, as kube-apiserver's kubelet client
    // (the API server's node proxy would do the same, but refuses loopback node
    // addresses such as the test bed's 127.0.0.1).
    let url = format!(
        "https://127.0.0.1:{}/stats/summary/{DEVICE}",
        stack.gateway.ready().kubelet_port
    );
    let out = std::process::Command::new("curl")
        .args(["-sSfk", "--max-time", "10", "--cert"])
        .arg(&cp.pki.kubelet_client_crt)
        .arg("--key")
        .arg(&cp.pki.kubelet_client_key)
        .arg(&url)
        .output()?;
    ensure!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(summary["node"]["nodeName"] == DEVICE, "{summary}");
    ensure!(
        summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{summary}"
    );
    ensure!(
        summary["node"]["cpu"]["usageNanoCores"].as_u64() > Some(0),
        "{summary}"
    );
    let pod_stats = summary["pods"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["podRef"]["name"] == POD))
        .ok_or_else(|| anyhow!("no {POD} in {summary}"))?;
    ensure!(pod_stats["containers"][0]["name"] == "spin", "{pod_stats}");
    ensure!(
        pod_stats["containers"][0]["cpu"]["usageNanoCores"].as_u64() > Some(0),
        "{pod_stats}"
    );
    // The agent's own counters, per device, on the gateway's /metrics.
    let metrics = http_get(&stack.gateway.metrics_url())?;
    let series = format!("edge_gateway_agent_mqtt_reconnects{{device=\"{DEVICE}\"}}");
    ensure!(
        metrics.contains(&series),
        "no {series} in the gateway's /metrics"
    );

    // The device goes away: its figures are stale, metrics-server drops the node.
    stack.agent(DEVICE)?.kill9();
    node_drops_out(&stack, DEVICE)
        .await
        .map_err(|e| anyhow!("{e}\n{}", logs(&stack)))?;
    drop(ms);
    Ok(())
}

/// A plain-HTTP GET (the gateway's loopback /metrics).
fn http_get(url: &str) -> Result<String> {
    let out = std::process::Command::new("curl")
        .args(["-sSf", "--max-time", "10", url])
        .output()?;
    ensure!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The sandbox (the API emulator, no metrics-server): the emulator serves the metrics API
/// from the gateway's `/metrics/resource/<node>` as metrics-server would, so `kubectl
/// top` works there too, and a device that goes away drops out.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_top_works_in_the_sandbox() -> Result<()> {
    const SANDBOX_DEVICE: &str = "top-metrics-sandbox";
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::Emulator);
    let mut stack = Stack::start(options).await?;
    ensure!(
        matches!(stack.cluster, Cluster::Emulator(_)),
        "this test is about the emulator"
    );
    stack.start_agent(SANDBOX_DEVICE, &[], AgentBuild::Host)?;
    let pods: Api<Pod> = Api::namespaced(stack.client().await?, &stack.namespace);
    pods.create(&PostParams::default(), &busy_pod(&stack))
        .await?;
    let node = eventually(
        "kubectl top node shows the device (emulator)",
        Duration::from_secs(120),
        || {
            let got = top(&stack, &["node", SANDBOX_DEVICE]);
            async move {
                let rows = got?;
                match rows.first() {
                    Some(r) if r.len() >= 5 && r[0] == SANDBOX_DEVICE => Ok(Some(r.clone())),
                    _ => Err(format!("rows: {rows:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    eprintln!(
        "kubectl top node {SANDBOX_DEVICE} (emulator): {}",
        node.join(" ")
    );
    ensure!(
        node[1].ends_with('m') && amount(&node[1]) > 0,
        "node CPU {node:?}"
    );
    let namespace = stack.namespace.clone();
    let pod = eventually(
        "kubectl top pod shows the pod (emulator)",
        Duration::from_secs(120),
        || {
            let got = top(&stack, &["pod", "-n", &namespace, "--containers"]);
            async move {
                let rows = got?;
                match rows
                    .iter()
                    .find(|r| r.first().map(String::as_str) == Some(POD))
                {
                    // POD NAME CPU MEMORY
                    Some(r) if r.len() >= 4 && r[1] == "spin" && amount(&r[2]) > 0 => {
                        Ok(Some(r.clone()))
                    }
                    _ => Err(format!("rows: {rows:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    eprintln!("kubectl top pod {POD} (emulator): {}", pod.join(" "));
    ensure!(
        pod[2].ends_with('m') && amount(&pod[2]) <= 260,
        "pod CPU above its 200m limit: {pod:?}"
    );
    ensure!(
        pod[3].ends_with("Mi") && amount(&pod[3]) >= 4,
        "pod memory {pod:?}"
    );
    stack.agent(SANDBOX_DEVICE)?.kill9();
    node_drops_out(&stack, SANDBOX_DEVICE)
        .await
        .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    Ok(())
}

#[test]
fn a_missing_metrics_server_binary_is_an_error_that_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = metrics_server::locate_in(Some(empty.path().to_owned()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("scripts/build-metrics-server.sh"), "{err}");
}
