//! What the end-to-end scenarios share: pod and Deployment manifests, creating pods in a stack's
//! namespace, waiting for pods and nodes, and the runtime's view of a pod's containers.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::stack::{BrokerKind, ClusterBackend, Stack, StackOptions, eventually};

pub const IMAGE: &str = "localhost/busybox:test";
const TOLERATION: &str = "virtual-kubelet.io/provider";

pub fn image() -> String {
    std::env::var("EDGE_TEST_IMAGE").unwrap_or_else(|_| IMAGE.to_owned())
}

/// A pod manifest: one container running `script` in sh, placed by `selector`.
pub fn pod_manifest(
    name: &str,
    selector: &[(&str, &str)],
    tolerate: bool,
    restart_policy: &str,
    script: &str,
) -> Pod {
    let node_selector: serde_json::Map<_, _> = selector
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let tolerations = if tolerate {
        json!([{"key": TOLERATION, "operator": "Exists", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": node_selector,
            "tolerations": tolerations,
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "main",
                "image": image(),
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
            }],
        }
    }))
    .expect("a literal pod manifest is a valid Pod")
}

/// A pod whose readiness flips every second, placed by `selector` (tolerating the
/// virtual kubelet taint): a steady stream of status changes.
pub fn flapping_pod(name: &str, selector: &[(&str, &str)]) -> Pod {
    let node_selector: serde_json::Map<_, _> = selector
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": node_selector,
            "tolerations": [{"key": TOLERATION, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": image(),
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c",
                    "while true; do touch /tmp/ready; sleep 1; rm -f /tmp/ready; sleep 1; done"],
                "readinessProbe": {
                    "exec": {"command": ["cat", "/tmp/ready"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                    "successThreshold": 1,
                },
            }],
        }
    }))
    .expect("a literal pod manifest is a valid Pod")
}

/// Polls `f` every 100 ms until it holds; fails after `timeout` naming `what`.
/// A temporary directory `<prefix><random>` and its random part, lowercase alphanumeric:
/// a tag for the run's device ids, namespaces and container names.
pub fn run_dir(prefix: &str) -> Result<(tempfile::TempDir, String)> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    let tag = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .trim_start_matches(prefix)
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    Ok((dir, tag))
}

pub async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{what}: not within {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The Events of object `name` (a pod, mostly) in the stack's namespace with `reason`,
/// one `<type> <message>` line each, through `kubectl get events` ("" when none).
pub fn events_of(stack: &Stack, name: &str, reason: &str) -> Result<String> {
    Ok(stack.kubectl.run(&[
        "get",
        "events",
        "-n",
        &stack.namespace,
        "--field-selector",
        &format!("involvedObject.name={name},reason={reason}"),
        "-o",
        "jsonpath={range .items[*]}{.type} {.message}{\"\\n\"}{end}",
    ])?)
}

/// A Deployment of one pod (label `app=<name>`, running `echo up; sleep 3600`) on this
/// stack's devices.
pub fn deployment(stack: &Stack, name: &str) -> Result<Deployment> {
    let (key, value) = stack.pod_node_selector();
    let mut template = serde_json::to_value(pod_manifest(
        name,
        &[],
        true,
        "Always",
        "echo up; sleep 3600",
    ))?;
    template["spec"]["nodeSelector"] = json!({key: value});
    template["metadata"] = json!({"labels": {"app": name}});
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        }
    }))?)
}

pub async fn pods(stack: &Stack) -> Result<Api<Pod>> {
    Ok(Api::namespaced(stack.client().await?, &stack.namespace))
}

pub async fn nodes(stack: &Stack) -> Result<Api<Node>> {
    Ok(Api::all(stack.client().await?))
}

/// Creates the pod in the stack's namespace, restricted to the stack's own devices.
pub async fn create(stack: &Stack, pod: &Pod) -> Result<Pod> {
    let mut pod = pod.clone();
    let (key, value) = stack.pod_node_selector();
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_selector
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
    }
    Ok(pods(stack)
        .await?
        .create(&PostParams::default(), &pod)
        .await?)
}

/// Waits until `pred` holds for the pod, failing with the stack's logs otherwise.
pub async fn wait_pod(
    stack: &Stack,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Pod) -> bool,
) -> Result<Pod> {
    let api = pods(stack).await?;
    let got = eventually(what, timeout, || {
        let api = api.clone();
        let pred = &pred;
        async move {
            match api.get_opt(name).await {
                Ok(Some(p)) if pred(&p) => Ok(Some(p)),
                Ok(Some(p)) => Err(format!("status now: {}", brief_status(&p))),
                Ok(None) => Err("pod not found".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    got.map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

pub fn brief_status(p: &Pod) -> String {
    let s = p.status.clone().unwrap_or_default();
    format!(
        "node={:?} phase={:?} conditions={:?} containers={:?}",
        p.spec.as_ref().and_then(|s| s.node_name.clone()),
        s.phase,
        s.conditions
            .unwrap_or_default()
            .iter()
            .map(|c| format!(
                "{}={}:{}",
                c.type_,
                c.status,
                c.reason.clone().unwrap_or_default()
            ))
            .collect::<Vec<_>>(),
        s.container_statuses
            .unwrap_or_default()
            .iter()
            .map(|c| format!(
                "{} restarts={} state={}",
                c.name,
                c.restart_count,
                serde_json::to_string(&c.state).unwrap_or_default()
            ))
            .collect::<Vec<_>>()
    )
}

pub fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

pub fn condition(p: &Pod, type_: &str) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

pub fn is_ready(p: &Pod) -> bool {
    phase(p) == "Running" && condition(p, "Ready").is_some_and(|c| c.0 == "True")
}

/// The reason the pod's first container is waiting (`CrashLoopBackOff`), if it is.
pub fn waiting_reason(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

pub fn restart_count(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

pub fn container_id(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .clone()
}

pub fn node_ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

pub async fn wait_node_ready(
    stack: &Stack,
    name: &str,
    want: &str,
    timeout: Duration,
) -> Result<Node> {
    let api = nodes(stack).await?;
    eventually(&format!("node {name} Ready={want}"), timeout, || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(Some(n)) if node_ready(&n).as_deref() == Some(want) => Ok(Some(n)),
                Ok(Some(n)) => Err(format!("Ready={:?}", node_ready(&n))),
                Ok(None) => Err("node not registered".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

/// Containers the runtime has for a pod uid, its infra container (the pod sandbox)
/// included: (full id, state such as `running`).
pub fn runtime_containers(pod_uid: &str) -> Result<Vec<(String, String)>> {
    Ok(labelled_containers(pod_uid)?
        .into_iter()
        .map(|(_, id, state)| (id, state))
        .collect())
}

/// The containers of the pod's own containers on the device (not its infra container,
/// the pod sandbox named `POD`): (id, state).
pub fn app_containers(pod_uid: &str) -> Result<Vec<(String, String)>> {
    Ok(labelled_containers(pod_uid)?
        .into_iter()
        .filter(|(name, _, _)| name != "POD")
        .map(|(_, id, state)| (id, state))
        .collect())
}

/// The pod's one app container: (id, start time as the runtime has it); it must be
/// running. Equal values before and after an event mean the container was neither
/// recreated nor restarted.
pub fn app_container_identity(pod_uid: &str) -> Result<(String, String)> {
    let containers = app_containers(pod_uid)?;
    let [(id, state)] = containers.as_slice() else {
        anyhow::bail!("expected one app container, got {containers:?}");
    };
    ensure!(state == "running", "the container is {state}");
    let host = std::env::var("EDGE_TEST_DOCKER_HOST")?;
    let out = Command::new("podman")
        .args([
            "--url",
            &host,
            "inspect",
            "--format",
            "{{.State.StartedAt}}",
            id,
        ])
        .output()
        .context("running podman inspect")?;
    ensure!(
        out.status.success(),
        "podman inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((
        id.clone(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

/// A pod `<device>-pod` on `device` that sleeps, Running and Ready: its uid and its
/// container's identity ([`app_container_identity`]), to check later that the container
/// survived an agent's restart or update.
pub async fn sleeping_pod_on(stack: &Stack, device: &str) -> Result<(String, (String, String))> {
    let name = format!("{device}-pod");
    let pod = pod_manifest(
        &name,
        &[("kubernetes.io/hostname", device)],
        true,
        "Always",
        "sleep 100000",
    );
    create(stack, &pod).await?;
    let pod = wait_pod(
        stack,
        &name,
        "Running and Ready",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;
    let pod_uid = uid(&pod);
    let identity = app_container_identity(&pod_uid)
        .map_err(|e| anyhow!("{name}'s container: {e}\n{}", stack.logs()))?;
    Ok((pod_uid, identity))
}

/// The pod's app container is the one of `before` (not recreated, not restarted).
pub fn same_container(
    stack: &Stack,
    pod_uid: &str,
    before: &(String, String),
    after_what: &str,
) -> Result<()> {
    let after = app_container_identity(pod_uid)
        .map_err(|e| anyhow!("after the {after_what}: {e}\n{}", stack.logs()))?;
    ensure!(
        &after == before,
        "the container changed through the {after_what}: {before:?} then {after:?}\n{}",
        stack.logs()
    );
    Ok(())
}

/// Every container labelled with the pod's uid: (container name label, id, state).
fn labelled_containers(pod_uid: &str) -> Result<Vec<(String, String, String)>> {
    let host = std::env::var("EDGE_TEST_DOCKER_HOST")
        .context("EDGE_TEST_DOCKER_HOST is not set: run `eval \"$(scripts/test-env.sh)\"`")?;
    let out = Command::new("podman")
        .args(["--url", &host, "ps", "-a", "--format", "json"])
        .args(["--filter", &format!("label=io.edge-kube.pod-uid={pod_uid}")])
        .output()
        .context("running podman")?;
    ensure!(
        out.status.success(),
        "podman ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    Ok(listed
        .iter()
        .map(|c| {
            let field = |k: &str| {
                c.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            let name = c
                .pointer("/Labels/io.edge-kube.container-name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            (name, field("Id"), field("State"))
        })
        .collect())
}

pub fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// Which broker and which Kubernetes backend a scenario runs on.
#[derive(Debug, Clone, Copy)]
pub struct StackOn {
    pub broker: BrokerKind,
    pub backend: ClusterBackend,
}

pub async fn start(on: StackOn) -> Result<Stack> {
    Ok(Stack::start(StackOptions::fast(on.broker).on(on.backend)).await?)
}
