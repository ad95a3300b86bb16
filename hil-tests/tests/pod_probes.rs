//! Probes on the real control plane, a real agent and Podman, through the real `kubectl`:
//! a gRPC readiness probe (`grpc.health.v1.Health/Check`) against a health server this
//! test runs makes the pod's Ready condition follow SERVING / NOT_SERVING; a liveness
//! probe on a port nobody listens on ends as on a kubelet (`Unhealthy` Warning Events
//! with "connection refused", the container killed and restarted, then
//! `CrashLoopBackOff`), while another pod on the same device stays Running and Ready.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use edge_hil_tests::scenario::wait_node_ready;
use edge_hil_tests::scenario::{
    brief_status, events_of, image, is_ready, phase, pods, restart_count, waiting_reason,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};
use serde_json::{Value, json};

const GRPC_DEVICE: &str = "grpc-probes-pi-01";
const MISSING_PORT_DEVICE: &str = "grpc-probes-pi-02";
const SERVING: u8 = 1;
const NOT_SERVING: u8 = 2;
/// Long enough for a probe period and a device round trip.
const FOLLOWS: Duration = Duration::from_secs(45);

/// A `grpc.health.v1.Health` server on 127.0.0.1:0 answering `status` for the service
/// `edge` (HTTP/2 via `h2`); returns its port and the services it was asked about.
async fn health_server(status: Arc<AtomicU8>) -> Result<(u16, Arc<Mutex<Vec<String>>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (status, log) = (status.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    let path_ok = request.uri().path() == "/grpc.health.v1.Health/Check";
                    let mut body = request.into_body();
                    let mut bytes = Vec::new();
                    while let Some(Ok(chunk)) = body.data().await {
                        bytes.extend_from_slice(&chunk);
                    }
                    // 5-byte gRPC prefix, then field 1 (tag, one-byte length): the service
                    let service = String::from_utf8_lossy(bytes.get(7..).unwrap_or_default());
                    log.lock().unwrap().push(service.to_string());
                    let head = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    let Ok(mut send) = respond.send_response(head, false) else {
                        continue;
                    };
                    let mut trailers = http::HeaderMap::new();
                    if path_ok && service == "edge" {
                        let message = vec![0, 0, 0, 0, 2, 0x08, status.load(Ordering::SeqCst)];
                        let _ = send.send_data(message.into(), false);
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    } else {
                        trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
                    }
                    let _ = send.send_trailers(trailers);
                }
            });
        }
    });
    Ok((port, asked))
}

/// `kubectl create -f` of a one-container pod on `device` running `sleep`, with
/// `extra` merged into its container.
fn kubectl_create(stack: &Stack, device: &str, name: &str, extra: Value) -> Result<()> {
    let (key, value) = stack.pod_node_selector();
    let mut container = json!({
        "name": "main",
        "image": image(),
        "imagePullPolicy": "Never",
        "command": ["/bin/sh", "-c", "sleep 3600"],
    });
    for (k, v) in extra.as_object().context("extra is an object")? {
        container[k] = v.clone();
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": stack.namespace},
        "spec": {
            "nodeSelector": {key: value, "kubernetes.io/hostname": device},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
        }
    });
    let file = tempfile::Builder::new().suffix(".json").tempfile()?;
    std::fs::write(file.path(), serde_json::to_vec(&pod)?)?;
    let path = file.path().to_str().context("temp path")?;
    stack.kubectl.run(&["create", "-f", path])?;
    Ok(())
}

/// The pod's Ready condition as `kubectl get pod -o jsonpath` prints it.
fn kubectl_ready(stack: &Stack, name: &str) -> Result<String> {
    Ok(stack.kubectl.run(&[
        "get",
        "pod",
        "-n",
        &stack.namespace,
        name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ])?)
}

async fn ready_becomes(stack: &Stack, name: &str, expected: &str) -> Result<()> {
    eventually(&format!("{name} Ready={expected}"), FOLLOWS, || {
        let got = kubectl_ready(stack, name).map_err(|e| e.to_string());
        async move {
            match got? {
                s if s == expected => Ok(Some(())),
                s => Err(format!("Ready={s:?}")),
            }
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

/// Messages of the pod's Events with `reason`, through `kubectl get events`.

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_readiness_probe_follows_the_health_servers_status() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(GRPC_DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, GRPC_DEVICE, "True", Duration::from_secs(60)).await?;
    let status = Arc::new(AtomicU8::new(SERVING));
    let (port, asked) = health_server(status.clone()).await?;
    let probe = json!({"grpc": {"port": port, "service": "edge"},
        "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1});
    kubectl_create(
        &stack,
        GRPC_DEVICE,
        "grpc-ready",
        json!({"readinessProbe": probe}),
    )?;
    ready_becomes(&stack, "grpc-ready", "True").await?;
    let get = stack
        .kubectl
        .run(&["get", "pod", "-n", &stack.namespace, "grpc-ready"])?;
    ensure!(get.contains("1/1") && get.contains("Running"), "{get}");
    ensure!(
        asked.lock().unwrap().iter().any(|s| s == "edge"),
        "the probe names its service: {:?}",
        asked.lock().unwrap()
    );

    status.store(NOT_SERVING, Ordering::SeqCst);
    ready_becomes(&stack, "grpc-ready", "False").await?;
    let get = stack
        .kubectl
        .run(&["get", "pod", "-n", &stack.namespace, "grpc-ready"])?;
    ensure!(get.contains("0/1") && get.contains("Running"), "{get}");
    let events = events_of(&stack, "grpc-ready", "Unhealthy")?;
    ensure!(
        events.contains(
            "Warning Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"
        ),
        "events: {events}"
    );

    status.store(SERVING, Ordering::SeqCst);
    ready_becomes(&stack, "grpc-ready", "True").await?;
    let p = pods(&stack).await?.get("grpc-ready").await?;
    ensure!(
        restart_count(&p) == 0,
        "readiness never restarts: {}",
        brief_status(&p)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_liveness_probe_on_a_missing_port_restarts_only_its_container() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(MISSING_PORT_DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, MISSING_PORT_DEVICE, "True", Duration::from_secs(60)).await?;
    // a port nobody listens on: bound once for a free number, then released
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    kubectl_create(
        &stack,
        MISSING_PORT_DEVICE,
        "bystander",
        // generous timeout: `podman exec` on a busy test machine can take over a second
        json!({"readinessProbe": {"exec": {"command": ["true"]},
            "periodSeconds": 2, "timeoutSeconds": 10}}),
    )?;
    ready_becomes(&stack, "bystander", "True").await?;
    kubectl_create(
        &stack,
        MISSING_PORT_DEVICE,
        "missing-port",
        json!({"livenessProbe": {"httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1}}),
    )?;
    let api = pods(&stack).await?;
    // restarted at least twice, then waiting in CrashLoopBackOff; the bystander is
    // Running and Ready, never restarted, at every look
    let stack = &stack;
    let crash_looping = eventually(
        "missing-port in CrashLoopBackOff",
        Duration::from_secs(120),
        || {
            let api = api.clone();
            async move {
                let by = api.get("bystander").await.map_err(|e| e.to_string())?;
                if phase(&by) != "Running" || !is_ready(&by) || restart_count(&by) != 0 {
                    let events = events_of(stack, "bystander", "Unhealthy");
                    return Ok(Some(Err(anyhow!(
                        "bystander disturbed: {} {events:?}",
                        brief_status(&by)
                    ))));
                }
                let p = api.get("missing-port").await.map_err(|e| e.to_string())?;
                if restart_count(&p) >= 2
                    && waiting_reason(&p).as_deref() == Some("CrashLoopBackOff")
                {
                    Ok(Some(Ok(p)))
                } else {
                    Err(brief_status(&p))
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))??;
    ensure!(
        phase(&crash_looping) == "Running",
        "{}",
        brief_status(&crash_looping)
    );
    let get = stack
        .kubectl
        .run(&["get", "pod", "-n", &stack.namespace, "missing-port"])?;
    ensure!(get.contains("CrashLoopBackOff"), "kubectl get pod: {get}");
    let unhealthy = events_of(stack, "missing-port", "Unhealthy")?;
    ensure!(
        unhealthy.contains(&format!(
            "Warning Liveness probe failed: Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )),
        "Unhealthy events: {unhealthy}"
    );
    let killing = events_of(stack, "missing-port", "Killing")?;
    ensure!(
        killing.contains("Container main failed liveness probe, will be restarted"),
        "Killing events: {killing}"
    );
    let back_off = events_of(stack, "missing-port", "BackOff")?;
    ensure!(
        back_off.contains("restarting failed container=main pod=missing-port_"),
        "BackOff events: {back_off}"
    );
    let by = api.get("bystander").await?;
    ensure!(
        phase(&by) == "Running" && is_ready(&by) && restart_count(&by) == 0,
        "bystander: {}",
        brief_status(&by)
    );
    let by_events = events_of(stack, "bystander", "Unhealthy")?;
    ensure!(by_events.trim().is_empty(), "bystander events: {by_events}");
    Ok(())
}
