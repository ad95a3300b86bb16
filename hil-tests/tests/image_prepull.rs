//! Image pre-pull end to end: the gateway (`--image-prepull-namespace`) has two real
//! agents pull images ahead from a real registry (Debian's docker-registry, TLS and a
//! login) as pre-pull ConfigMaps declare, on Mosquitto with the real control plane (the
//! gateway under its shipped ClusterRole and Role) and on the embedded broker with the
//! emulator:
//! - a pre-pull of the registry's image (its login from a `kubernetes.io/dockerconfigjson`
//!   Secret named in `imagePullSecrets`) and of an image already on the devices completes
//!   on both: each Node's `edge-kube.io/image-prepull` annotation says complete, each has
//!   one `ImagesPrepulled` Event, the ConfigMap's status says Complete with 2 of 2 Nodes,
//!   the image is in the runtime and in the Node's `status.images`;
//! - a pod using the registry's image with `imagePullPolicy: IfNotPresent` and no pull
//!   Secret then starts on a device (it would fail to pull without the login);
//! - a second pre-pull of a missing image, selecting one device, fails there: that Node's
//!   annotation says failed with the registry's answer, an `ImagePrepullFailed` Warning,
//!   the pre-pull's status lists the device; the other pre-pull stays Complete;
//! - deleting the pre-pulls releases the images: the Nodes' annotations go away.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use edge_hil_tests::controlplane::GATEWAY_NAMESPACE;
use edge_hil_tests::scenario::{
    create, image, is_ready, nodes, pod_manifest, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, STACK_LABEL, Stack, StackOptions,
};
use edge_hil_tests::test_registry::TestRegistry;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

const USER: &str = "fleet-bot";
const PASSWORD: &str = "pre-pull-s3cret";

#[tokio::test(flavor = "multi_thread")]
async fn prepull_on_mosquitto_and_the_real_control_plane() -> Result<()> {
    scenario(
        BrokerKind::Mosquitto,
        ClusterBackend::ControlPlane,
        "prepull-mq",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn prepull_on_the_embedded_broker_and_the_emulator() -> Result<()> {
    scenario(
        BrokerKind::Embedded,
        ClusterBackend::Emulator,
        "prepull-emb",
    )
    .await
}

/// A Node's pre-pull annotation, parsed (`Null` when absent).
fn annotation(node: &Node) -> Value {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("edge-kube.io/image-prepull"))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

fn node_images(node: &Node) -> Vec<String> {
    node.status
        .as_ref()
        .and_then(|s| s.images.as_ref())
        .map(|images| {
            images
                .iter()
                .flat_map(|i| i.names.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

fn status(stack: &Stack, namespace: &str, name: &str) -> Result<Value> {
    let out = stack.kubectl.run(&[
        "-n",
        namespace,
        "get",
        "configmap",
        name,
        "-o",
        r"jsonpath={.metadata.annotations.edge-kube\.io/prepull-status}",
    ])?;
    Ok(serde_json::from_str(out.trim()).unwrap_or(Value::Null))
}

async fn node(stack: &Stack, name: &str) -> Result<Node> {
    Ok(nodes(stack).await?.get(name).await?)
}

/// Waits until `check` holds for the pre-pull's status and every device's Node.
async fn wait_until(
    stack: &Stack,
    namespace: &str,
    prepull: Option<&str>,
    devices: &[String],
    what: &str,
    check: impl Fn(&Value, &[Node]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = match prepull {
            Some(name) => status(stack, namespace, name)?,
            None => Value::Null,
        };
        let mut found = Vec::new();
        for d in devices {
            found.push(node(stack, d).await?);
        }
        if check(&status, &found) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{what}: not within 180 s; status {status}\nnodes: {:?}\n{}",
            found
                .iter()
                .map(|n| (n.metadata.name.clone(), annotation(n), node_images(n)))
                .collect::<Vec<_>>(),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `<type> <message>` of the Events of Node `name` with `reason` (Node Events are in
/// `default`, as the kubelet's).
fn node_events(stack: &Stack, name: &str, reason: &str) -> Result<Vec<String>> {
    let out = stack.kubectl.run(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={name},reason={reason}"),
        "-o",
        "jsonpath={range .items[*]}{.type} {.count} {.message}{\"\\n\"}{end}",
    ])?;
    Ok(out.lines().map(str::to_owned).collect())
}

fn podman_has(image: &str) -> bool {
    std::process::Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .is_ok_and(|s| s.success())
}

async fn scenario(broker: BrokerKind, backend: ClusterBackend, prefix: &str) -> Result<()> {
    let work = tempfile::tempdir()?;
    let registry = TestRegistry::start(work.path(), USER, PASSWORD, prefix);
    // the gateway's own namespace: its Role lets it write the pre-pulls' status there only
    let namespace = GATEWAY_NAMESPACE.to_owned();
    let mut options = StackOptions::fast(broker).on(backend);
    options.gateway_args = vec!["--image-prepull-namespace".into(), namespace.clone()];
    // the node report lists the images (status.images) from the eviction manager's
    // listing, off by default in the test bed; image GC stays off (the runtime is shared)
    options.agent_args = [
        "--eviction-monitoring-interval-seconds",
        "2",
        "--eviction-hard",
        "memory.available<1Mi,nodefs.available<1%",
        "--image-gc-high-threshold-percent",
        "100",
        "--image-gc-low-threshold-percent",
        "100",
    ]
    .map(String::from)
    .to_vec();
    let mut stack = Stack::start(options).await?;
    let devices: Vec<String> = (1..=2).map(|i| format!("{prefix}-{i}")).collect();
    for device in &devices {
        stack.start_agent(device, &[], AgentBuild::Host)?;
    }
    for device in &devices {
        wait_node_ready(&stack, device, "True", Duration::from_secs(90)).await?;
    }
    stack.kubectl.ensure_namespace(&namespace)?;
    stack.kubectl.run(&[
        "-n",
        &namespace,
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.host),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASSWORD}"),
    ])?;
    let selector = format!("{STACK_LABEL}={}", stack.namespace);
    let declare = |name: &str, images: &str, selector: &str| -> Result<()> {
        stack.kubectl.run(&[
            "-n",
            &namespace,
            "create",
            "configmap",
            name,
            &format!("--from-literal=images={images}"),
            &format!("--from-literal=nodeSelector={selector}"),
            "--from-literal=imagePullSecrets=regcred",
        ])?;
        stack.kubectl.run(&[
            "-n",
            &namespace,
            "label",
            "configmap",
            name,
            "edge-kube.io/image-prepull=true",
        ])?;
        Ok(())
    };

    // the registry's image (with its login) and one already on the devices
    let started = Instant::now();
    declare(
        "app-next",
        &format!("{}\n{}", registry.image, image()),
        &selector,
    )?;
    wait_until(
        &stack,
        &namespace,
        Some("app-next"),
        &devices,
        "pre-pull complete",
        |s, nodes| {
            s["phase"] == "Complete"
                && s["complete"] == 2
                && s["nodes"] == 2
                && nodes.iter().all(|n| {
                    annotation(n)["phase"] == "complete"
                        && annotation(n)["present"] == 2
                        && node_images(n).contains(&registry.image)
                })
        },
    )
    .await?;
    eprintln!("{prefix}: 2 images on 2 devices in {:?}", started.elapsed());
    ensure!(
        podman_has(&registry.image),
        "the image is not in the runtime"
    );
    for device in &devices {
        let events = node_events(&stack, device, "ImagesPrepulled")?;
        ensure!(
            events.len() == 1 && events[0].starts_with("Normal 1 2 image(s)"),
            "{device}: ImagesPrepulled Events {events:?}"
        );
    }

    // a pod of the registry's image needs no login now: it is on the device
    let mut pod = pod_manifest(
        &format!("{prefix}-uses-prepulled"),
        &[("kubernetes.io/hostname", devices[0].as_str())],
        true,
        "Always",
        "sleep 100000",
    );
    let container = &mut pod.spec.as_mut().unwrap().containers[0];
    container.image = Some(registry.image.clone());
    container.image_pull_policy = Some("IfNotPresent".into());
    create(&stack, &pod).await?;
    wait_pod(
        &stack,
        &format!("{prefix}-uses-prepulled"),
        "Running and Ready with the pre-pulled image",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;

    // a missing image, on the first device only: it fails there, and says why
    let missing = format!("{}/edge/missing:1", registry.host);
    declare(
        "broken",
        &missing,
        &format!("kubernetes.io/hostname={}", devices[0]),
    )?;
    wait_until(
        &stack,
        &namespace,
        Some("broken"),
        &devices,
        "pre-pull failed",
        |s, nodes| {
            s["failed"] == 1
                && s["nodes"] == 1
                && s["failures"][0]
                    .as_str()
                    .is_some_and(|f| f.starts_with(&format!("{}: {missing}: ", devices[0])))
                && annotation(&nodes[0])["phase"] == "failed"
                && annotation(&nodes[1])["phase"] == "complete"
        },
    )
    .await?;
    let failed = node_events(&stack, &devices[0], "ImagePrepullFailed")?;
    ensure!(
        failed.len() == 1 && failed[0].starts_with("Warning") && failed[0].contains(&missing),
        "ImagePrepullFailed Events {failed:?}"
    );
    ensure!(
        status(&stack, &namespace, "app-next")?["phase"] == "Complete",
        "the other pre-pull changed"
    );

    // deleting the pre-pulls releases the images: the annotations go away
    for name in ["broken", "app-next"] {
        stack
            .kubectl
            .run(&["-n", &namespace, "delete", "configmap", name])?;
    }
    wait_until(
        &stack,
        &namespace,
        None,
        &devices,
        "annotations removed",
        |_, nodes| nodes.iter().all(|n| annotation(n).is_null()),
    )
    .await?;
    let forbidden = stack.forbidden_calls();
    ensure!(
        forbidden.is_empty(),
        "the gateway needed more than its ClusterRole and Role: {forbidden:?}"
    );
    drop(registry);
    Ok(())
}
