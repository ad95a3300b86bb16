//! Hostile devices against the real gateway binary, real brokers and real agents, on the
//! API emulator and on the real control plane (the gateway under its shipped RBAC):
//! a device named like an existing Node, a revoked device that stays connected, a device
//! faking its capacity, and pods that would overflow a device's desired set.
//!
//! Each scenario fails on a gateway without the matching defence (issue 11, defects 2, 5,
//! 6 and 9).

#![allow(clippy::unwrap_used)]

#[allow(dead_code, unused_macros)]
mod e2e_scenarios;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use e2e_scenarios::{
    StackOn, create, nodes, pod_manifest, pods, runtime_containers, start, wait_node_ready,
    wait_pod,
};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, STACK_LABEL, Stack, binary, eventually};
use edge_protocol::{DeviceId, NodeResources};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// Waits for a line in the gateway's log.
async fn gateway_logged(stack: &Stack, needle: &str, timeout: Duration) -> Result<()> {
    eventually(&format!("gateway log line {needle:?}"), timeout, || async {
        if stack.gateway.log().contains(needle) {
            Ok(Some(()))
        } else {
            Err("not yet".to_owned())
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

/// A device whose id is the name of an existing Node (as a kubelet registered it) gets
/// nothing: the Node keeps its labels, no Lease is written for it, the pods bound to it
/// and their Secrets never reach the device, and an Event on the Node says why.
pub async fn node_takeover_is_refused(on: StackOn) -> Result<()> {
    let mut stack = start(on).await?;
    let client = stack.client().await?;
    let victim = format!("worker-{}", stack.namespace);
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), victim.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        (STACK_LABEL.to_owned(), stack.namespace.clone()),
    ]);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": victim, "labels": labels},
    }))?;
    // as the API server stored it (it adds labels of its own, e.g. beta.kubernetes.io/os)
    let labels = nodes(&stack)
        .await?
        .create(&PostParams::default(), &node)
        .await?
        .labels()
        .clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &stack.namespace);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "db"},
                "stringData": {"password": "s3cret"},
            }))?,
        )
        .await?;
    let mut pod = pod_manifest("on-worker", &[], true, "Always", "sleep 3600");
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(victim.clone());
        spec.node_selector = None;
        spec.containers[0].env = Some(vec![serde_json::from_value(json!({
            "name": "PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
        }))?]);
    }
    let pod = pods(&stack)
        .await?
        .create(&PostParams::default(), &pod)
        .await?;

    stack.start_agent(&victim, &[("site", "evil")], AgentBuild::Host)?;
    gateway_logged(&stack, "refusing a device", Duration::from_secs(60)).await?;
    // give a gateway without the defence time to deliver and patch
    tokio::time::sleep(Duration::from_secs(5)).await;

    // (the node lifecycle controller adds beta.kubernetes.io/os on its own)
    let now = nodes(&stack).await?.get(&victim).await?;
    let kept = labels.iter().all(|(k, v)| now.labels().get(k) == Some(v));
    let ours = [
        "type",
        "site",
        "kubernetes.io/arch",
        "edge-kube.io/managed-by",
    ];
    ensure!(
        kept && !ours.iter().any(|k| now.labels().contains_key(*k)),
        "the Node's labels changed: {:?}",
        now.labels()
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    ensure!(
        leases.get_opt(&victim).await?.is_none(),
        "a Lease was written for a Node that is not ours"
    );
    ensure!(
        runtime_containers(&uid(&pod))?.is_empty(),
        "the pod (and its Secret) reached the impostor"
    );
    let pod_now = pods(&stack).await?.get("on-worker").await?;
    ensure!(
        pod_now
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_none(),
        "the gateway reported a status for a pod of a Node that is not ours"
    );
    let events: Api<Event> = Api::namespaced(client, "default");
    let conflict = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("NodeNameConflict")
                && e.involved_object.name.as_deref() == Some(victim.as_str())
        });
    ensure!(conflict, "no NodeNameConflict Event on {victim}");
    Ok(())
}

/// A revoked device that stays connected gets nothing more: a pod created for it after
/// `edge-gateway revoke` never runs, and the gateway forgets it.
pub async fn revoked_device_gets_nothing_more(on: StackOn) -> Result<()> {
    let mut stack = start(on).await?;
    stack.start_agent("rev-1", &[("site", "rev")], AgentBuild::Host)?;
    wait_node_ready(&stack, "rev-1", "True", Duration::from_secs(60)).await?;
    create(
        &stack,
        &pod_manifest("before", &[("site", "rev")], true, "Always", "sleep 3600"),
    )
    .await?;
    wait_pod(&stack, "before", "Running", Duration::from_secs(90), |p| {
        e2e_scenarios::phase(p) == "Running"
    })
    .await?;

    let out = std::process::Command::new(binary("edge-gateway")?)
        .args(["revoke", "rev-1", "--store-dir"])
        .arg(stack.dir().join("gateway-store"))
        .output()
        .context("running edge-gateway revoke")?;
    ensure!(
        out.status.success(),
        "edge-gateway revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    gateway_logged(&stack, "device retired", Duration::from_secs(30)).await?;

    let after = create(
        &stack,
        &pod_manifest("after", &[("site", "rev")], true, "Always", "sleep 3600"),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(
        runtime_containers(&uid(&after))?.is_empty(),
        "a pod created after the revocation ran on the revoked device\n{}",
        stack.logs()
    );
    Ok(())
}

/// Capacity a device reports cannot override the standard resources, use the
/// kubernetes.io domain or exceed int64 (which breaks every status patch of the Node).
pub async fn faked_capacity_is_validated(on: StackOn) -> Result<()> {
    let stack = start(on).await?;
    let url = stack.gateway.broker_url();
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("broker url {url}"))?;
    let device = |id: &str, capacity: NodeResources| {
        let mut cfg = FakeDeviceConfig::new(DeviceId::new(id).unwrap(), "127.0.0.1", port);
        cfg.labels = BTreeMap::from([(STACK_LABEL.to_owned(), stack.namespace.clone())]);
        cfg.capacity = capacity;
        cfg
    };
    let faked = NodeResources {
        cpu_millis: 4000,
        memory_bytes: 4 << 30,
        ephemeral_storage_bytes: 32 << 30,
        pods: 20,
        extended: BTreeMap::from([
            ("cpu".to_owned(), 1_000_000),
            ("pods".to_owned(), 100_000),
            ("kubernetes.io/batteries".to_owned(), 1),
            ("example.com/huge".to_owned(), u64::MAX),
            ("nvidia.com/gpu".to_owned(), 2),
        ]),
    };
    let _faker = FakeDevice::start(device("cap-1", faked.clone())).await?;
    let node = wait_node_ready(&stack, "cap-1", "True", Duration::from_secs(60)).await?;
    let capacity = node
        .status
        .and_then(|s| s.capacity)
        .ok_or_else(|| anyhow!("node without capacity"))?;
    let get = |k: &str| capacity.get(k).map(|q| q.0.clone());
    ensure!(get("cpu").as_deref() == Some("4"), "{capacity:?}");
    ensure!(get("pods").as_deref() == Some("20"), "{capacity:?}");
    ensure!(
        get("nvidia.com/gpu").as_deref() == Some("2"),
        "{capacity:?}"
    );
    ensure!(get("kubernetes.io/batteries").is_none(), "{capacity:?}");
    ensure!(get("example.com/huge").is_none(), "{capacity:?}");

    let overflow = NodeResources {
        memory_bytes: u64::MAX,
        extended: BTreeMap::new(),
        ..faked
    };
    let _overflow = FakeDevice::start(device("cap-2", overflow)).await?;
    gateway_logged(&stack, "bad_capacity", Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        nodes(&stack).await?.get_opt("cap-2").await?.is_none(),
        "a Node was made from a report beyond int64"
    );
    Ok(())
}

/// A pod that would make its device's desired set larger than one MQTT message is
/// rejected (Failed, DesiredSetTooLarge) and the device keeps getting its other pods.
pub async fn pod_over_the_set_limit_is_rejected(on: StackOn) -> Result<()> {
    let mut stack = start(on).await?;
    let client = stack.client().await?;
    stack.start_agent("big-1", &[("site", "big")], AgentBuild::Host)?;
    wait_node_ready(&stack, "big-1", "True", Duration::from_secs(60)).await?;
    let maps: Api<ConfigMap> = Api::namespaced(client, &stack.namespace);
    // four ConfigMaps of 1 MB (the API's limit per object) are 5.3 MB in a desired set
    // (base64): one pod mounting them fits the 8 MiB message, two do not
    let blobs = ["blob-a", "blob-b", "blob-c", "blob-d"];
    for name in blobs {
        maps.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name},
                "data": {"blob": "x".repeat(1_000_000)},
            }))?,
        )
        .await?;
    }
    let with_blobs = |name: &str| -> Result<Pod> {
        let mut pod = pod_manifest(name, &[("site", "big")], true, "Always", "sleep 3600");
        let spec = pod.spec.as_mut().context("spec")?;
        spec.volumes = Some(
            blobs
                .iter()
                .map(|b| serde_json::from_value(json!({"name": b, "configMap": {"name": b}})))
                .collect::<Result<_, _>>()?,
        );
        spec.containers[0].volume_mounts = Some(
            blobs
                .iter()
                .map(|b| serde_json::from_value(json!({"name": b, "mountPath": format!("/{b}")})))
                .collect::<Result<_, _>>()?,
        );
        Ok(pod)
    };
    create(&stack, &with_blobs("fits")?).await?;
    wait_pod(&stack, "fits", "Running", Duration::from_secs(120), |p| {
        e2e_scenarios::phase(p) == "Running"
    })
    .await?;
    create(&stack, &with_blobs("too-much")?).await?;
    let rejected = wait_pod(
        &stack,
        "too-much",
        "Failed with DesiredSetTooLarge",
        Duration::from_secs(60),
        |p| {
            p.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Failed")
                    && s.reason.as_deref() == Some("DesiredSetTooLarge")
            })
        },
    )
    .await?;
    ensure!(runtime_containers(&uid(&rejected))?.is_empty());
    create(
        &stack,
        &pod_manifest("small", &[("site", "big")], true, "Always", "sleep 3600"),
    )
    .await?;
    wait_pod(
        &stack,
        "small",
        "Running (the device is not frozen)",
        Duration::from_secs(90),
        |p| e2e_scenarios::phase(p) == "Running",
    )
    .await?;
    Ok(())
}

macro_rules! on_both_backends {
    ($($name:ident($broker:expr)),* $(,)?) => {
        mod emulator {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() -> Result<()> {
                    super::$name(StackOn {
                        broker: $broker,
                        backend: edge_hil_tests::stack::ClusterBackend::Emulator,
                    })
                    .await
                }
            )*
        }
        mod control_plane {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() -> Result<()> {
                    super::$name(StackOn {
                        broker: $broker,
                        backend: edge_hil_tests::stack::ClusterBackend::ControlPlane,
                    })
                    .await
                }
            )*
        }
    };
}

on_both_backends!(
    node_takeover_is_refused(BrokerKind::Embedded),
    revoked_device_gets_nothing_more(BrokerKind::Mosquitto),
    faked_capacity_is_validated(BrokerKind::Embedded),
    pod_over_the_set_limit_is_rejected(BrokerKind::Embedded),
);
