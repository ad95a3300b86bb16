//! Offline autonomy on the real control plane (own binary: the webhook configuration is
//! cluster-wide, and the control plane's timers are shortened): kube-apiserver's default
//! not-ready/unreachable tolerations are 10 s instead of 300 s, and the node lifecycle
//! controller's grace period is 10 s instead of 50 s.
//!
//! - The shipped MutatingWebhookConfiguration (its rules, selectors and CEL match
//!   condition as in deploy/kustomize/base, only pointed at the test gateway's loopback
//!   port) gives device pods tolerations of their budget, leaves every other pod alone,
//!   and a gateway that is down blocks no pod creation.
//! - A Deployment's pod on a device offline longer than the cluster's default toleration
//!   but within its budget stays bound and keeps its container; past the budget it is
//!   evicted and replaced, and the device, back online, removes the old container.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use edge_hil_tests::controlplane::{ControlPlane, SharedControlPlaneSettings};
use edge_hil_tests::scenario::{
    create, deployment, pod_manifest, pods, runtime_containers, uid, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The cluster's default toleration (kube-apiserver flags) in this binary.
const CLUSTER_DEFAULT_TOLERATION: u32 = 10;
const WEBHOOK_CONFIGURATION: &str = "edge-gateway-autonomy";

fn timers() -> SharedControlPlaneSettings {
    SharedControlPlaneSettings {
        node_monitor_grace_period: Some(Duration::from_secs(10)),
        default_toleration_seconds: Some(CLUSTER_DEFAULT_TOLERATION),
        apiserver_feature_gates: None,
    }
}

/// The webhook configuration is cluster-wide and points at one gateway: the tests of this
/// binary run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A stack on this binary's control plane whose gateway serves the webhook, with the
/// shipped webhook configuration pointed at it.
async fn stack_with_webhook(default_autonomy: &str) -> Result<Stack> {
    ControlPlane::configure_shared(timers())?;
    // The previous test's configuration (pointing at its gateway, with its CA) goes first.
    let cp = tokio::task::spawn_blocking(ControlPlane::shared).await??;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(cp.client().await?);
    if configs.get_opt(WEBHOOK_CONFIGURATION).await?.is_some() {
        configs
            .delete(WEBHOOK_CONFIGURATION, &DeleteParams::default())
            .await?;
    }
    let mut options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    options.gateway_args = vec![
        "--admission-webhook-listen".into(),
        "127.0.0.1:0".into(),
        "--default-autonomy".into(),
        default_autonomy.into(),
        "--cluster-default-toleration-seconds".into(),
        CLUSTER_DEFAULT_TOLERATION.to_string(),
    ];
    let stack = Stack::start(options).await?;
    install_webhook_configuration(&stack).await?;
    Ok(stack)
}

/// The shipped configuration, with `clientConfig` pointed at the gateway's loopback port
/// (no Service here) and without a caBundle: the gateway must register its CA.
async fn install_webhook_configuration(stack: &Stack) -> Result<()> {
    let port = stack
        .gateway
        .ready()
        .webhook_port
        .context("the gateway serves no webhook")?;
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kustomize/base/mutatingwebhookconfiguration.yaml");
    let rendered = stack.kubectl.run(&[
        "create",
        "--dry-run=client",
        "-o",
        "json",
        "-f",
        &manifest.display().to_string(),
    ])?;
    let mut config: Value = serde_json::from_str(&rendered)?;
    config["webhooks"][0]["clientConfig"] =
        json!({"url": format!("https://127.0.0.1:{port}/mutate-pods")});
    // The stack's own namespace must not be excluded; the shipped exclusions stay.
    let api: Api<MutatingWebhookConfiguration> = Api::all(stack.client().await?);
    api.create(&PostParams::default(), &serde_json::from_value(config)?)
        .await?;
    // The gateway retries registering its CA with back-off; a restart registers it at once.
    eventually(
        "the gateway registers its webhook CA",
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let config = api
                    .get(WEBHOOK_CONFIGURATION)
                    .await
                    .map_err(|e| e.to_string())?;
                let registered = config
                    .webhooks
                    .unwrap_or_default()
                    .iter()
                    .all(|w| w.client_config.ca_bundle.is_some());
                Ok(registered.then_some(()))
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    Ok(())
}

fn toleration_seconds(pod: &Pod, key: &str) -> Option<i64> {
    pod.spec
        .as_ref()?
        .tolerations
        .as_ref()?
        .iter()
        .find(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some("NoExecute"))?
        .toleration_seconds
}

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Creates the pod; returns it as admitted.
async fn created(stack: &Stack, pod: &Pod) -> Result<Pod> {
    create(stack, pod).await
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_gives_device_pods_their_budget_and_blocks_nothing() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut stack = stack_with_webhook("1h").await?;
    stack.start_agent("budget-1", &[("site", "field")], AgentBuild::Host)?;
    wait_node_ready(&stack, "budget-1", "True", Duration::from_secs(60)).await?;

    // A device pod: the cluster's 10 s defaults become the 1 h default budget.
    let pod = created(
        &stack,
        &pod_manifest("device-pod", &[], true, "Always", "sleep 3600"),
    )
    .await?;
    for key in [UNREACHABLE, NOT_READY] {
        ensure!(
            toleration_seconds(&pod, key) == Some(3600),
            "{key}: {:?}\n{}",
            pod.spec.as_ref().and_then(|s| s.tolerations.clone()),
            stack.gateway.log()
        );
    }

    // A pod that cannot land on a device keeps the cluster's defaults.
    let cloud = created(
        &stack,
        &pod_manifest("cloud-pod", &[], false, "Always", "sleep 3600"),
    )
    .await?;
    ensure!(
        toleration_seconds(&cloud, UNREACHABLE) == Some(i64::from(CLUSTER_DEFAULT_TOLERATION)),
        "a pod that cannot run on devices was changed: {:?}",
        cloud.spec.and_then(|s| s.tolerations)
    );

    // A pod with its own tolerations keeps them.
    let mut own = pod_manifest("own-pod", &[], true, "Always", "sleep 3600");
    own.spec.as_mut().unwrap().tolerations.as_mut().unwrap().push(serde_json::from_value(
        json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 42}),
    )?);
    let own = created(&stack, &own).await?;
    ensure!(
        toleration_seconds(&own, UNREACHABLE) == Some(42),
        "own toleration lost"
    );
    ensure!(
        toleration_seconds(&own, NOT_READY) == Some(3600),
        "the toleration it did not bring gets the budget"
    );

    // An opted-out pod keeps Kubernetes' defaults.
    let mut off = pod_manifest("off-pod", &[], true, "Always", "sleep 3600");
    off.metadata.annotations =
        Some([("edge-kube.io/autonomy".to_owned(), "off".to_owned())].into());
    let off = created(&stack, &off).await?;
    ensure!(toleration_seconds(&off, UNREACHABLE) == Some(i64::from(CLUSTER_DEFAULT_TOLERATION)));

    // The Node's annotation sets its budget; the webhook sees it through its watch.
    let nodes: Api<Node> = Api::all(stack.client().await?);
    nodes
        .patch(
            "budget-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"edge-kube.io/autonomy": "2h"}}})),
        )
        .await?;
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let pod = pod_manifest(
            &format!("annotated-{n}"),
            &[("site", "field")],
            true,
            "Always",
            "sleep 3600",
        );
        let pod = created(&stack, &pod).await?;
        if toleration_seconds(&pod, UNREACHABLE) == Some(7200) {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "the Node's budget was not applied"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A gateway that is down blocks nothing: creation succeeds within the webhook's
    // timeout, with the cluster's defaults.
    stack.gateway.kill9();
    let started = Instant::now();
    let pod = created(
        &stack,
        &pod_manifest("while-down", &[], true, "Always", "sleep 3600"),
    )
    .await?;
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "pod creation took {:?}",
        started.elapsed()
    );
    ensure!(toleration_seconds(&pod, UNREACHABLE) == Some(i64::from(CLUSTER_DEFAULT_TOLERATION)));
    Ok(())
}

async fn deployment_pods(stack: &Stack, app: &str) -> Result<Vec<Pod>> {
    Ok(pods(stack)
        .await?
        .list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await?
        .items)
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_within_budget_keeps_pods_and_past_it_they_move() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut stack = stack_with_webhook("40s").await?;
    stack.start_agent("roam-1", &[], AgentBuild::Host)?;
    wait_node_ready(&stack, "roam-1", "True", Duration::from_secs(60)).await?;
    let deployments: Api<Deployment> = Api::namespaced(stack.client().await?, &stack.namespace);
    deployments
        .create(&PostParams::default(), &deployment(&stack, "roamer")?)
        .await?;
    let api = pods(&stack).await?;
    let first = eventually("the roamer pod runs", Duration::from_secs(90), || {
        let stack = &stack;
        async move {
            let pods = deployment_pods(stack, "roamer")
                .await
                .map_err(|e| e.to_string())?;
            Ok(pods
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    ensure!(
        toleration_seconds(&first, UNREACHABLE) == Some(40),
        "budget not applied"
    );
    // A second device that stays online. Without it every node of the zone would be
    // offline, and the node lifecycle controller evicts nothing in a fully disrupted
    // zone: the budget would not be what keeps the pod.
    stack.start_agent("anchor-1", &[], AgentBuild::Host)?;
    wait_node_ready(&stack, "anchor-1", "True", Duration::from_secs(60)).await?;
    let first_uid = uid(&first);
    let first_name = first.metadata.name.clone().unwrap();
    let containers = runtime_containers(&first_uid)?;

    // Offline for twice the cluster's default toleration (plus the grace period): the
    // pod stays bound, and no replacement is made.
    stack.agent("roam-1")?.kill9();
    wait_node_ready(&stack, "roam-1", "Unknown", Duration::from_secs(60)).await?;
    let nodes: Api<Node> = Api::all(stack.client().await?);
    eventually(
        "roam-1 tainted unreachable:NoExecute",
        Duration::from_secs(30),
        || {
            let nodes = nodes.clone();
            async move {
                let node = nodes.get("roam-1").await.map_err(|e| e.to_string())?;
                let tainted = node
                    .spec
                    .and_then(|s| s.taints)
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.key == UNREACHABLE && t.effect == "NoExecute");
                Ok(tainted.then_some(()))
            }
        },
    )
    .await?;
    // The Node says when the budget runs out, and /metrics counts it within budget.
    let expires = eventually(
        "roam-1 shows when its budget expires",
        Duration::from_secs(20),
        || {
            let nodes = nodes.clone();
            async move {
                let node = nodes.get("roam-1").await.map_err(|e| e.to_string())?;
                Ok(node
                    .metadata
                    .annotations
                    .unwrap_or_default()
                    .get("edge-kube.io/autonomy-expires")
                    .cloned())
            }
        },
    )
    .await?;
    let expires: jiff::Timestamp = expires.parse()?;
    let until = expires.duration_since(jiff::Timestamp::now());
    ensure!(
        until > jiff::SignedDuration::from_secs(15) && until <= jiff::SignedDuration::from_secs(40),
        "budget expiry {expires} is {until:?} away, want within the 40 s budget"
    );
    let metrics = http_get(&stack.gateway.metrics_url()).await?;
    ensure!(
        metrics.contains("edge_gateway_devices_offline_within_autonomy_budget 1"),
        "metrics: {}",
        metrics
            .lines()
            .filter(|l| l.contains("autonomy"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    tokio::time::sleep(Duration::from_secs(
        u64::from(CLUSTER_DEFAULT_TOLERATION) * 2,
    ))
    .await;
    let pods_now = deployment_pods(&stack, "roamer").await?;
    ensure!(
        pods_now.len() == 1
            && uid(&pods_now[0]) == first_uid
            && pods_now[0].metadata.deletion_timestamp.is_none(),
        "within the budget the pod must stay: {:?}",
        pods_now
            .iter()
            .map(|p| (
                p.metadata.name.clone(),
                p.metadata.deletion_timestamp.is_some()
            ))
            .collect::<Vec<_>>()
    );

    // Back within the budget: the same container keeps running, nothing is recreated.
    stack.agent("roam-1")?.restart()?;
    wait_node_ready(&stack, "roam-1", "True", Duration::from_secs(60)).await?;
    let p = wait_pod(
        &stack,
        &first_name,
        "roamer Ready again",
        Duration::from_secs(60),
        edge_hil_tests::scenario::is_ready,
    )
    .await?;
    ensure!(uid(&p) == first_uid);
    eventually(
        "the expiry annotation is gone once the device is back",
        Duration::from_secs(30),
        || {
            let nodes = nodes.clone();
            async move {
                let node = nodes.get("roam-1").await.map_err(|e| e.to_string())?;
                let gone = !node
                    .metadata
                    .annotations
                    .unwrap_or_default()
                    .contains_key("edge-kube.io/autonomy-expires");
                Ok(gone.then_some(()))
            }
        },
    )
    .await?;
    ensure!(
        runtime_containers(&first_uid)? == containers,
        "the container changed: {containers:?} -> {:?}",
        runtime_containers(&first_uid)?
    );

    // Past the budget: evicted, replaced; the device, back, removes the old container.
    stack.agent("roam-1")?.kill9();
    wait_node_ready(&stack, "roam-1", "Unknown", Duration::from_secs(60)).await?;
    eventually(
        "the roamer pod is evicted after its budget",
        Duration::from_secs(120),
        || {
            let api = api.clone();
            let name = first_name.clone();
            async move {
                match api.get_opt(&name).await.map_err(|e| e.to_string())? {
                    None => Ok(Some(())),
                    Some(p) if p.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                    Some(_) => Ok(None),
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    stack.agent("roam-1")?.restart()?;
    eventually(
        "the device removes the moved pod's container",
        Duration::from_secs(90),
        || {
            let first_uid = first_uid.clone();
            async move {
                let left = runtime_containers(&first_uid).map_err(|e| e.to_string())?;
                Ok(left.is_empty().then_some(()))
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    // An Event on the evicted pod says why the device stopped it.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(stack.client().await?, &stack.namespace);
    eventually(
        "an EvictedWhileOffline event",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            let first_uid = first_uid.clone();
            async move {
                let list = events
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(list
                    .items
                    .iter()
                    .find(|e| {
                        e.reason.as_deref() == Some("EvictedWhileOffline")
                            && e.involved_object.uid.as_deref() == Some(first_uid.as_str())
                    })
                    .map(|_| ()))
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    // The replacement runs on the device that stayed online.
    eventually(
        "the replacement runs on anchor-1",
        Duration::from_secs(90),
        || {
            let stack = &stack;
            let first_uid = first_uid.clone();
            async move {
                let pods = deployment_pods(stack, "roamer")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(pods
                    .iter()
                    .find(|p| {
                        uid(p) != first_uid
                            && p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                                == Some("anchor-1")
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .map(|_| ()))
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    Ok(())
}

async fn http_get(url: &str) -> Result<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()?;
    ensure!(out.status.success(), "GET {url} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
