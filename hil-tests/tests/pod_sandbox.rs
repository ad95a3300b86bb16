//! A pod on a device behaves like a pod on a kubelet, through the real control plane
//! and the real kubectl: an init container, a sidecar and two containers that talk over
//! 127.0.0.1 in the pod's shared network namespace, applied with `kubectl apply`.
//! `kubectl get pod` shows `Init:0/2` and then `Running`, `initContainerStatuses` are
//! filled, and `kubectl exec` into one container reaches the other on localhost; init
//! containers that never succeed print `Init:Error` (Never) and `Init:CrashLoopBackOff`
//! (Always) while the first pod keeps running.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use edge_hil_tests::scenario::{create, is_ready, wait_node_ready, wait_pod};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

const DEVICE: &str = "sandbox-pi-01";
const POD: &str = "sandboxed";
const TOLERATION: &str = "virtual-kubelet.io/provider";

fn manifest() -> Pod {
    let busybox =
        std::env::var("EDGE_TEST_IMAGE").unwrap_or_else(|_| "localhost/busybox:test".into());
    let work = json!([{"name": "work", "mountPath": "/work"}]);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": DEVICE},
            "tolerations": [{"key": TOLERATION, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                {"name": "setup", "image": busybox, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "sleep 6; echo written-by-init > /work/index.html"],
                 "volumeMounts": work},
                {"name": "sidecar", "image": busybox, "imagePullPolicy": "IfNotPresent",
                 "restartPolicy": "Always",
                 "command": ["sh", "-c", "trap 'exit 0' TERM; while sleep 0.5; do date > /work/sidecar; done"],
                 "volumeMounts": work}
            ],
            "containers": [
                {"name": "web", "image": busybox, "imagePullPolicy": "IfNotPresent",
                 "command": ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/work"],
                 "volumeMounts": work},
                {"name": "client", "image": busybox, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "exec sleep 100000"]}
            ]
        }
    }))
    .unwrap()
}

/// A pod whose only init container exits 1 under `policy`.
fn failing_init(name: &str, policy: &str) -> Pod {
    let busybox =
        std::env::var("EDGE_TEST_IMAGE").unwrap_or_else(|_| "localhost/busybox:test".into());
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": DEVICE},
            "tolerations": [{"key": TOLERATION, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 2,
            "restartPolicy": policy,
            "initContainers": [{"name": "broken", "image": busybox,
                "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "exit 1"]}],
            "containers": [{"name": "app", "image": busybox,
                "imagePullPolicy": "IfNotPresent", "command": ["sleep", "1000"]}]
        }
    }))
    .unwrap()
}

/// The STATUS column of `kubectl get pod`.
fn printed_status_of(stack: &Stack, pod: &str) -> Result<String> {
    let ns = stack.namespace.clone();
    let out = stack
        .kubectl
        .run(&["get", "pod", pod, "-n", &ns, "--no-headers"])?;
    Ok(out.split_whitespace().nth(2).unwrap_or_default().to_owned())
}

fn printed_status(stack: &Stack) -> Result<String> {
    printed_status_of(stack, POD)
}
#[tokio::test(flavor = "multi_thread")]
async fn init_sidecar_and_two_containers_on_localhost_through_kubectl() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    // `kubectl apply`, as a user would (with the stack's node selector, as `create` adds).
    let mut pod = manifest();
    let (key, value) = stack.pod_node_selector();
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_selector
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&pod)?)?;
    let ns = stack.namespace.clone();
    let path = file.path().display().to_string();
    stack.kubectl.run(&["apply", "-n", &ns, "-f", &path])?;

    // What kubectl prints while the init container runs, then once the pod runs.
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let status = printed_status(&stack)?;
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "Running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ensure!(
        seen.iter().any(|s| s == "Init:0/2") && seen.last().map(String::as_str) == Some("Running"),
        "kubectl get pod printed {seen:?}\n{}",
        stack.logs()
    );
    eprintln!("kubectl get pod printed {seen:?}");
    let pod = wait_pod(&stack, POD, "ready", Duration::from_secs(60), is_ready).await?;
    let status = pod.status.clone().unwrap_or_default();
    let init = status.init_container_statuses.clone().unwrap_or_default();
    ensure!(init.len() == 2, "initContainerStatuses: {init:?}");
    let setup = init[0].state.clone().unwrap_or_default().terminated;
    ensure!(
        init[0].name == "setup"
            && setup
                .as_ref()
                .is_some_and(|t| t.exit_code == 0 && t.reason.as_deref() == Some("Completed")),
        "setup: {:?}",
        init[0]
    );
    ensure!(
        init[1].name == "sidecar"
            && init[1].state.clone().unwrap_or_default().running.is_some()
            && init[1].started == Some(true),
        "sidecar: {:?}",
        init[1]
    );
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Initialized")
        .map(|c| c.status.clone());
    ensure!(
        initialized.as_deref() == Some("True"),
        "Initialized: {initialized:?}"
    );
    ensure!(status.pod_ip.is_some(), "podIP: {status:?}");

    // kubectl exec into one container reaches the other on 127.0.0.1, and the page
    // there is what the init container wrote; the hostname is the pod's name.
    let ns = stack.namespace.clone();
    let fetched = eventually(
        "the web container over localhost",
        Duration::from_secs(30),
        || {
            let out = stack
                .kubectl
                .run(&[
                    "exec",
                    POD,
                    "-n",
                    &ns,
                    "-c",
                    "client",
                    "--",
                    "sh",
                    "-c",
                    "wget -q -O - http://127.0.0.1:8080/index.html && hostname",
                ])
                .map_err(|e| e.to_string());
            async move { Ok(out.ok()) }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    ensure!(
        fetched.contains("written-by-init") && fetched.contains(POD),
        "exec output: {fetched}"
    );

    // Init containers that never succeed: what kubectl prints, by restart policy.
    for (name, policy, printed) in [
        ("init-never", "Never", "Init:Error"),
        ("init-always", "Always", "Init:CrashLoopBackOff"),
    ] {
        create(&stack, &failing_init(name, policy)).await?;
        eventually(printed, Duration::from_secs(60), || {
            let status = printed_status_of(&stack, name).map_err(|e| e.to_string());
            async move {
                let status = status?;
                if status == printed {
                    Ok(Some(()))
                } else {
                    Err(format!("kubectl prints {status}"))
                }
            }
        })
        .await
        .map_err(|e| anyhow!("{name}: {e}\n{}", stack.logs()))?;
    }
    // The pod that runs is unaffected.
    ensure!(printed_status(&stack)? == "Running");
    Ok(())
}
