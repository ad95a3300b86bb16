//! Retiring a device on the real control plane, with real agents on Podman (the command on
//! the embedded broker and on Mosquitto):
//! - `edge-gateway retire <id>`: the Deployment's pod on the device is deleted (a Warning
//!   `DeviceRetired` Event) and its replacement runs on another device; the Node and its
//!   Lease are gone; the gateway's store holds nothing of the device; the agent removed
//!   its containers and its state directory and exited 78; started again it is refused
//!   (told again, exits again, no Node comes back) and counted in the metrics.
//! - `kubectl delete node` of a Node labelled `edge-kube.io/retire=true` does the same; a
//!   Node deleted without the label comes back.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use edge_gateway::enrollment::RevocationList;
use edge_gateway::store::Store;
use edge_hil_tests::scenario::{deployment, phase, pods, runtime_containers, uid, wait_node_ready};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, binary, eventually,
};
use edge_protocol::DeviceId;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};

const RETIRED_EXIT_CODE: i32 = 78;

async fn stack(broker: BrokerKind) -> Result<Stack> {
    Ok(Stack::start(StackOptions::fast(broker).on(ClusterBackend::ControlPlane)).await?)
}

/// A Deployment of one pod on this stack's devices.
async fn deploy(stack: &Stack, name: &str) -> Result<()> {
    Api::<Deployment>::namespaced(stack.client().await?, &stack.namespace)
        .create(&PostParams::default(), &deployment(stack, name)?)
        .await?;
    Ok(())
}

/// The Deployment's pod Running on `node` (and not being deleted).
async fn running_on(stack: &Stack, app: &str, node: &str, timeout: Duration) -> Result<Pod> {
    let api = pods(stack).await?;
    let app = app.to_owned();
    let node = node.to_owned();
    eventually(&format!("a {app} pod Running on {node}"), timeout, || {
        let api = api.clone();
        let (app, node) = (app.clone(), node.clone());
        async move {
            let list = api
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .map_err(|e| e.to_string())?;
            Ok(list.items.into_iter().find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && phase(p) == "Running"
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
            }))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

/// Waits for the agent of `device` to exit by itself; its exit status.
async fn agent_exit(stack: &mut Stack, device: &str, timeout: Duration) -> Result<i32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(code) = stack.agent(device)?.exit_code() {
            return Ok(code);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the agent of {device} did not exit\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Node and Lease of `device` gone (and staying gone for `quiet`).
async fn node_and_lease_gone(stack: &Stack, device: &str, quiet: Duration) -> Result<()> {
    let client = stack.client().await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let device_owned = device.to_owned();
    eventually(
        &format!("Node and Lease {device} deleted"),
        Duration::from_secs(30),
        || {
            let (nodes, leases, d) = (nodes.clone(), leases.clone(), device_owned.clone());
            async move {
                let node = nodes.get_opt(&d).await.map_err(|e| e.to_string())?;
                let lease = leases.get_opt(&d).await.map_err(|e| e.to_string())?;
                Ok((node.is_none() && lease.is_none()).then_some(()))
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    tokio::time::sleep(quiet).await;
    ensure!(
        nodes.get_opt(device).await?.is_none(),
        "the Node of retired {device} came back\n{}",
        stack.logs()
    );
    ensure!(
        leases.get_opt(device).await?.is_none(),
        "its Lease came back"
    );
    // as a user sees it
    let get = stack.kubectl.output(&["get", "node", device])?;
    ensure!(!get.status.success(), "kubectl get node {device} found it");
    let get = stack
        .kubectl
        .output(&["get", "lease", "-n", "kube-node-lease", device])?;
    ensure!(!get.status.success(), "kubectl get lease found it");
    Ok(())
}

fn retirements(metrics: &str, event: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("edge_gateway_retirements_total{")
                && l.contains(&format!("event=\"{event}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn http_get(url: &str) -> Result<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()?;
    ensure!(out.status.success(), "GET {url} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn retire_moves_pods_deletes_node_lease_and_store_and_wipes_the_device() -> Result<()> {
    retire_scenario(BrokerKind::Embedded, "retire-cmd-old", "retire-cmd-new").await
}

#[tokio::test(flavor = "multi_thread")]
async fn retire_on_mosquitto() -> Result<()> {
    retire_scenario(BrokerKind::Mosquitto, "retire-mq-old", "retire-mq-new").await
}

/// `edge-gateway retire` of the device running a Deployment's pod, with `new` beside it.
async fn retire_scenario(broker: BrokerKind, old: &str, new: &str) -> Result<()> {
    let mut stack = stack(broker).await?;
    stack.start_agent(old, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, old, "True", Duration::from_secs(60)).await?;
    deploy(&stack, "moved").await?;
    let before = running_on(&stack, "moved", old, Duration::from_secs(90)).await?;
    let before_uid = uid(&before);
    ensure!(
        !runtime_containers(&before_uid)?.is_empty(),
        "no containers of the pod"
    );
    stack.start_agent(new, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, new, "True", Duration::from_secs(60)).await?;
    let state_dir = stack.agent(old)?.state_dir().to_owned();
    ensure!(
        state_dir.join("store").exists(),
        "the agent keeps no store in {state_dir:?}"
    );

    let store_dir = stack.dir().join("gateway-store");
    let out = std::process::Command::new(binary("edge-gateway")?)
        .args(["retire", old, "--store-dir"])
        .arg(&store_dir)
        .output()
        .context("running edge-gateway retire")?;
    ensure!(
        out.status.success(),
        "edge-gateway retire: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // the device wiped itself and exited for good
    let code = agent_exit(&mut stack, old, Duration::from_secs(60)).await?;
    ensure!(
        code == RETIRED_EXIT_CODE,
        "exit status {code}\n{}",
        stack.logs()
    );
    ensure!(
        stack
            .agent(old)?
            .log()
            .contains("this device was retired by its gateway"),
        "{}",
        stack.logs()
    );
    ensure!(
        !state_dir.exists(),
        "the state directory {state_dir:?} is still there"
    );
    ensure!(
        runtime_containers(&before_uid)?.is_empty(),
        "containers of the retired device's pod remain: {:?}",
        runtime_containers(&before_uid)?
    );

    // the pod moved; the old one got a Warning Event
    let after = running_on(&stack, "moved", new, Duration::from_secs(90)).await?;
    ensure!(uid(&after) != before_uid, "the same pod");
    let name = before.metadata.name.clone().unwrap();
    let events = stack.kubectl.run(&[
        "get",
        "events",
        "-n",
        &stack.namespace,
        "--field-selector",
        &format!("involvedObject.name={name},reason=DeviceRetired,type=Warning"),
        "-o",
        "jsonpath={.items[*].message}",
    ])?;
    ensure!(
        events.contains(&format!("its node {old} was retired")),
        "events: {events:?}"
    );
    ensure!(
        pods(&stack).await?.get_opt(&name).await?.is_none(),
        "the old pod is still there"
    );
    node_and_lease_gone(&stack, old, Duration::from_secs(3)).await?;

    // started again, it is refused: told again, exits again, no Node
    stack.agent(old)?.restart()?;
    let code = agent_exit(&mut stack, old, Duration::from_secs(60)).await?;
    ensure!(
        code == RETIRED_EXIT_CODE,
        "exit status {code} on its return"
    );
    node_and_lease_gone(&stack, old, Duration::from_secs(2)).await?;
    let metrics = http_get(&stack.gateway.metrics_url())?;
    ensure!(retirements(&metrics, "retired") >= 1.0, "{metrics}");
    ensure!(retirements(&metrics, "order_sent") >= 2.0, "{metrics}");
    ensure!(retirements(&metrics, "refused") >= 1.0, "{metrics}");
    ensure!(
        stack.forbidden_calls().is_empty(),
        "{:?}",
        stack.forbidden_calls()
    );

    // the store holds nothing of it (read once the gateway is down)
    stack.gateway.kill9();
    let store = Store::open(&store_dir)?;
    let old = DeviceId::new(old)?;
    ensure!(
        !store
            .load_devices()
            .into_iter()
            .flatten()
            .any(|(d, _)| d == old),
        "its desired set is still stored"
    );
    ensure!(
        !store.load_reports().contains_key(&old),
        "its node report is still stored"
    );
    ensure!(
        !store
            .load_log_tails()
            .iter()
            .any(|(k, _)| k.starts_with(&format!("{old}/"))),
        "its log tails are still stored"
    );
    ensure!(
        store
            .load_devices()
            .into_iter()
            .flatten()
            .any(|(d, _)| d.as_str() == new),
        "the other device is not stored (the check reads the wrong store)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_node_labelled_retire_retires_its_device_and_without_the_label_it_comes_back()
-> Result<()> {
    const LABELLED: &str = "retire-label-dev";
    const PLAIN: &str = "retire-label-plain";
    let mut stack = stack(BrokerKind::Embedded).await?;
    stack.start_agent(LABELLED, &[], AgentBuild::Host)?;
    stack.start_agent(PLAIN, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, LABELLED, "True", Duration::from_secs(60)).await?;
    let plain_node = wait_node_ready(&stack, PLAIN, "True", Duration::from_secs(60)).await?;
    let state_dir = stack.agent(LABELLED)?.state_dir().to_owned();

    // without the label: the Node comes back (a new object) at the next node status
    // write (every --node-status-interval, 60 s), the device keeps running
    stack.kubectl.run(&["delete", "node", PLAIN])?;
    let nodes: Api<Node> = Api::all(stack.client().await?);
    let old_uid = plain_node.metadata.uid.clone();
    eventually(
        "the unlabelled Node to come back",
        Duration::from_secs(150),
        || {
            let (nodes, old_uid) = (nodes.clone(), old_uid.clone());
            async move {
                let n = nodes.get_opt(PLAIN).await.map_err(|e| e.to_string())?;
                Ok(n.filter(|n| n.metadata.uid != old_uid).map(|_| ()))
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    ensure!(stack.agent(PLAIN)?.is_running(), "{}", stack.logs());

    // with it: retired
    stack
        .kubectl
        .run(&["label", "node", LABELLED, "edge-kube.io/retire=true"])?;
    stack.kubectl.run(&["delete", "node", LABELLED])?;
    let code = agent_exit(&mut stack, LABELLED, Duration::from_secs(60)).await?;
    ensure!(
        code == RETIRED_EXIT_CODE,
        "exit status {code}\n{}",
        stack.logs()
    );
    ensure!(
        !state_dir.exists(),
        "the state directory {state_dir:?} is still there"
    );
    node_and_lease_gone(&stack, LABELLED, Duration::from_secs(3)).await?;
    let revoked = RevocationList::load(stack.dir().join("gateway-store"))?;
    ensure!(
        revoked.contains(&DeviceId::new(LABELLED)?),
        "not on the revocation list"
    );
    ensure!(
        !revoked.contains(&DeviceId::new(PLAIN)?),
        "the unlabelled device was retired"
    );
    ensure!(stack.agent(PLAIN)?.is_running(), "{}", stack.logs());
    ensure!(
        stack.forbidden_calls().is_empty(),
        "{:?}",
        stack.forbidden_calls()
    );
    Ok(())
}
