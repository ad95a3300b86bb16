//! Container lifecycle hooks and termination messages on the real control plane, real
//! `kubectl` and real Podman, as on a kubelet: a postStart hook writes a file the app
//! reads (and the pod is Ready only after it), a failing postStart is a
//! `FailedPostStartHook` Event and a restart, a preStop httpGet reaches a server of
//! this test when the pod is deleted, and what a container writes to its termination
//! log (or, with `FallbackToLogsOnError`, its log's tail) is
//! `state.terminated.message`.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use edge_hil_tests::scenario::{
    create, events_of, is_ready, phase, pod_manifest, restart_count, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEVICE: &str = "hooks-pi-01";

/// `pod_manifest` with `patch` merged into its first container (and `host_network`).
fn pod_with(
    name: &str,
    policy: &str,
    script: &str,
    patch: serde_json::Value,
    host_network: bool,
) -> Pod {
    let on_device = [("kubernetes.io/hostname", DEVICE)];
    let mut v = serde_json::to_value(pod_manifest(name, &on_device, true, policy, script)).unwrap();
    let c = &mut v["spec"]["containers"][0];
    for (k, val) in patch.as_object().unwrap() {
        c[k] = val.clone();
    }
    if host_network {
        v["spec"]["hostNetwork"] = json!(true);
    }
    serde_json::from_value(v).unwrap()
}

/// An HTTP server on 127.0.0.1:0 that answers 200 and keeps each request's head.
async fn recording_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut b = [0u8; 2048];
            let n = s.read(&mut b).await.unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&b[..n]).into_owned());
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    (port, seen)
}

fn jsonpath(stack: &Stack, pod: &str, path: &str) -> Result<String> {
    let ns = stack.namespace.clone();
    Ok(stack.kubectl.run(&[
        "get",
        "pod",
        "-n",
        &ns,
        pod,
        "-o",
        &format!("jsonpath={path}"),
    ])?)
}

async fn wait_message(stack: &Stack, pod: &str, want: &str) -> Result<String> {
    let path = "{.status.containerStatuses[0].state.terminated.message}";
    Ok(eventually(
        &format!("{pod}: termination message"),
        Duration::from_secs(60),
        || async {
            match jsonpath(stack, pod, path) {
                Ok(m) if m.contains(want) => Ok(Some(m)),
                Ok(m) => Err(format!("message now {m:?}")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_and_termination_messages_work_as_on_a_kubelet() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let (port, seen) = recording_server().await;

    // postStart writes what the app waits for; preStop calls this test (host network:
    // an httpGet without host goes to the pod IP, loopback here).
    let hooks = pod_with(
        "hooks",
        "Always",
        "until [ -f /tmp/post-start ]; do sleep 0.1; done; cat /tmp/post-start; sleep 3600",
        json!({"lifecycle": {
            "postStart": {"exec": {"command": ["sh", "-c", "sleep 1; echo written-by-post-start > /tmp/post-start"]}},
            "preStop": {"httpGet": {"port": port, "path": "/pre-stop",
                "httpHeaders": [{"name": "X-Hook", "value": "pre-stop"}]}}
        }}),
        true,
    );
    create(&stack, &hooks).await?;
    // postStart exits non-zero: an Event, the container is killed and restarted
    let failing = pod_with(
        "post-start-fails",
        "Always",
        "sleep 3600",
        json!({"lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo no-way; exit 7"]}}}}),
        false,
    );
    create(&stack, &failing).await?;
    let last_words = pod_with(
        "last-words",
        "Never",
        "echo sensor unplugged > /dev/termination-log; exit 3",
        json!({}),
        false,
    );
    create(&stack, &last_words).await?;
    let own_path = pod_with(
        "own-path",
        "Never",
        "printf 'calibrated' > /tmp/why",
        json!({"terminationMessagePath": "/tmp/why"}),
        false,
    );
    create(&stack, &own_path).await?;
    let fallback = pod_with(
        "from-logs",
        "Never",
        "echo first-line; echo oops-from-the-log >&2; exit 2",
        json!({"terminationMessagePolicy": "FallbackToLogsOnError"}),
        false,
    );
    create(&stack, &fallback).await?;

    wait_pod(
        &stack,
        "hooks",
        "Ready after postStart",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;
    let ns = stack.namespace.clone();
    let logs = eventually(
        "the app read the file postStart wrote",
        Duration::from_secs(30),
        || async {
            match stack.kubectl.run(&["logs", "-n", &ns, "hooks"]) {
                Ok(l) if l.contains("written-by-post-start") => Ok(Some(l)),
                Ok(l) => Err(format!("logs now {l:?}")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    ensure!(logs.trim() == "written-by-post-start", "logs: {logs}");
    // the agent declares lifecycleHooks: the gateway does not call them not applied
    for pod in ["hooks", "from-logs"] {
        let not_applied = events_of(&stack, pod, "FieldsNotApplied")?;
        ensure!(not_applied.is_empty(), "{pod}: {not_applied}");
    }

    let m = wait_message(&stack, "last-words", "sensor unplugged").await?;
    ensure!(m.trim() == "sensor unplugged", "message: {m:?}");
    let m = wait_message(&stack, "own-path", "calibrated").await?;
    ensure!(m == "calibrated", "message: {m:?}");
    let m = wait_message(&stack, "from-logs", "oops-from-the-log").await?;
    ensure!(m.contains("first-line"), "the log's tail: {m:?}");
    let p = wait_pod(
        &stack,
        "from-logs",
        "Failed",
        Duration::from_secs(30),
        |p| phase(p) == "Failed",
    )
    .await?;
    ensure!(restart_count(&p) == 0, "{:?}", p.status);

    let failed = eventually(
        "FailedPostStartHook event",
        Duration::from_secs(60),
        || async {
            match events_of(&stack, "post-start-fails", "FailedPostStartHook") {
                Ok(m) if !m.is_empty() => Ok(Some(m)),
                Ok(_) => Err("no event yet".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    ensure!(
        failed.contains("exited with 7") && failed.contains("no-way"),
        "event: {failed}"
    );
    wait_pod(
        &stack,
        "post-start-fails",
        "restarted after its postStart failed",
        Duration::from_secs(60),
        |p| restart_count(p) >= 1,
    )
    .await?;
    let p = edge_hil_tests::scenario::pods(&stack)
        .await?
        .get("post-start-fails")
        .await?;
    ensure!(!is_ready(&p), "never ready: {:?}", p.status);

    ensure!(
        seen.lock().unwrap().is_empty(),
        "preStop before any delete: {:?}",
        seen.lock().unwrap()
    );
    stack
        .kubectl
        .run(&["delete", "pod", "-n", &ns, "hooks", "--wait=false"])?;
    let request = eventually("the preStop httpGet", Duration::from_secs(60), || async {
        Ok(seen.lock().unwrap().first().cloned())
    })
    .await?;
    ensure!(
        request.starts_with("GET /pre-stop HTTP/1.1") && request.contains("X-Hook: pre-stop"),
        "request: {request}"
    );
    let api = edge_hil_tests::scenario::pods(&stack).await?;
    eventually("the deleted pod is gone", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            match api.get_opt("hooks").await {
                Ok(None) => Ok(Some(())),
                Ok(Some(_)) => Err("still there".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;
    ensure!(
        events_of(&stack, "hooks", "FailedPreStopHook")?.is_empty(),
        "preStop succeeded"
    );
    Ok(())
}
