//! `nvidia.com/gpu` on the real control plane, without a GPU: the agent is given fake
//! device ids (`--gpu-devices`), reports them as the Node's capacity, assigns distinct
//! ones to the containers that ask, and passes them to the runtime. The runtime's own
//! inspect output shows what was passed: on the Docker Engine the NVIDIA device request
//! (`HostConfig.DeviceRequests`, driver `nvidia`, the ids, `[["gpu"]]`); on Podman,
//! whose Docker API drops device requests, `NVIDIA_VISIBLE_DEVICES`. A pod asking for
//! more GPUs than are free is refused as the kubelet does (`UnexpectedAdmissionError`)
//! while the other pods are unaffected; a restarted agent takes the assignment back
//! from the containers' labels. Without an NVIDIA driver the Docker Engine
//! cannot start such a container: its error is what the user sees.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use edge_hil_tests::scenario::{
    brief_status, create, events_of, nodes, phase, pod_manifest, pods, uid, wait_node_ready,
    wait_pod,
};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions};
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::DeleteParams;
use serde_json::Value;

/// The runtime a scenario's agent uses, inspected with its own CLI.
#[derive(Debug, Clone, Copy)]
enum Runtime {
    DockerEngine,
    Podman,
}

impl Runtime {
    fn host(self) -> Result<String> {
        let var = match self {
            Runtime::DockerEngine => "EDGE_TEST_DOCKER_ENGINE_HOST",
            Runtime::Podman => "EDGE_TEST_DOCKER_HOST",
        };
        std::env::var(var).with_context(|| format!("{var} is not set: eval scripts/test-env.sh"))
    }

    /// `docker -H <host>` / `podman --url <host>`.
    fn cli(self) -> Result<Command> {
        let host = self.host()?;
        Ok(match self {
            Runtime::DockerEngine => {
                let mut c = Command::new("docker");
                c.args(["-H", &host]);
                c
            }
            Runtime::Podman => {
                let mut c = Command::new("podman");
                c.args(["--url", &host]);
                c
            }
        })
    }

    fn run(self, args: &[&str]) -> Result<String> {
        let out = self
            .cli()?
            .args(args)
            .output()
            .context("running the runtime's CLI")?;
        ensure!(
            out.status.success(),
            "{self:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `inspect` of the pod's container `main` (its newest instance), once created.
    /// The crash-loop back-off replaces instances, so one listed may be gone when it is
    /// inspected: then it lists again.
    fn inspect_main(self, pod_uid: &str) -> Result<Option<Value>> {
        let mut last_error = None;
        for _ in 0..5 {
            let ids = self.run(&[
                "ps",
                "-a",
                "-q",
                "--filter",
                &format!("label=io.edge-kube.pod-uid={pod_uid}"),
                "--filter",
                "label=io.edge-kube.container-name=main",
            ])?;
            let Some(id) = ids.split_whitespace().next() else {
                return Ok(None);
            };
            match self.run(&["inspect", id]) {
                Ok(out) => {
                    let inspected: Vec<Value> = serde_json::from_str(&out)?;
                    return Ok(inspected.into_iter().next());
                }
                Err(e) => last_error = Some(e),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("inspect of {pod_uid} failed")))
    }

    /// Removes every container the agent of `device` made (best effort).
    fn remove_device_containers(self, device: &str) {
        let Ok(ids) = self.run(&[
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=io.edge-kube.device={device}"),
        ]) else {
            return;
        };
        for id in ids.split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

/// Removes the device's containers however the test ends.
struct Cleanup(Runtime, &'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.remove_device_containers(self.1);
    }
}

fn gpu_pod(name: &str, device: &str, gpus: &str) -> Pod {
    let on_device = [("kubernetes.io/hostname", device)];
    let mut pod = pod_manifest(name, &on_device, true, "Always", "sleep 3600");
    let limits = BTreeMap::from([("nvidia.com/gpu".to_owned(), Quantity(gpus.to_owned()))]);
    pod.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
        limits: Some(limits),
        ..Default::default()
    });
    pod
}

/// Waits for the pod's `main` container on the runtime and returns its inspect output.
async fn wait_inspect(runtime: Runtime, pod_uid: &str, stack: &Stack) -> Result<Value> {
    for _ in 0..120 {
        if let Some(v) = runtime.inspect_main(pod_uid)? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("no container for pod {pod_uid}\n{}", stack.logs())
}

/// The devices the agent's label on the container records.
fn assigned_devices(inspect: &Value) -> String {
    inspect
        .pointer("/Config/Labels/io.edge-kube.gpu-devices")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn device_requests(inspect: &Value) -> Value {
    inspect
        .pointer("/HostConfig/DeviceRequests")
        .cloned()
        .unwrap_or(Value::Null)
}

fn env_of(inspect: &Value) -> Vec<String> {
    inspect
        .pointer("/Config/Env")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `gpu-second`'s status carries the runtime's start error `why` (as the
/// status prints, quotes escaped).
async fn wait_start_error(stack: &Stack, why: &str) -> Result<Pod> {
    wait_pod(
        stack,
        "gpu-second",
        "the start error in the status",
        Duration::from_secs(60),
        |p| format!("{:?}", p.status).contains(why),
    )
    .await
}

/// Node capacity, one pod per GPU with distinct ids, the refused pod, an agent
/// restart; returns the stack (with `gpu-second` still there) and both pods' first
/// inspect output for the runtime-specific checks.
async fn scenario(
    runtime: Runtime,
    device: &'static str,
    ids: [&str; 2],
    extra_args: &[&str],
) -> Result<(Stack, Value, Value)> {
    let mut args = vec!["--gpu-devices".to_owned(), ids.join(",")];
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    if let Runtime::DockerEngine = runtime {
        args.extend(["--runtime-socket".to_owned(), runtime.host()?]);
    }
    let mut options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    options.agent_args = args;
    let mut stack = Stack::start(options).await?;
    stack.start_agent(device, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, device, "True", Duration::from_secs(60)).await?;
    let node = nodes(&stack).await?.get(device).await?;
    let capacity = node.status.as_ref().and_then(|s| s.capacity.clone());
    ensure!(
        capacity
            .as_ref()
            .and_then(|c| c.get("nvidia.com/gpu"))
            .map(|q| q.0.as_str())
            == Some("2"),
        "capacity: {capacity:?}"
    );

    let first = create(&stack, &gpu_pod("gpu-first", device, "1")).await?;
    let first_inspect = wait_inspect(runtime, &uid(&first), &stack).await?;
    let second = create(&stack, &gpu_pod("gpu-second", device, "1")).await?;
    let second_inspect = wait_inspect(runtime, &uid(&second), &stack).await?;
    let assigned = assigned_devices;
    let (a, b) = (assigned(&first_inspect), assigned(&second_inspect));
    ensure!(
        ids.contains(&a.as_str()) && ids.contains(&b.as_str()) && a != b,
        "distinct devices: {a:?} {b:?}"
    );
    // The device's agent assigns GPUs: no FieldsNotApplied warning for them.
    ensure!(
        events_of(&stack, "gpu-first", "FieldsNotApplied")?.is_empty(),
        "FieldsNotApplied for an applied GPU request"
    );

    // Bound past the scheduler (which would keep it Pending): the agent's admission
    // refuses it; the running pods keep their devices.
    let mut third = gpu_pod("gpu-third", device, "2");
    third.spec.as_mut().unwrap().node_name = Some(device.to_owned());
    create(&stack, &third).await?;
    let refused = wait_pod(
        &stack,
        "gpu-third",
        "UnexpectedAdmissionError",
        Duration::from_secs(60),
        |p| {
            phase(p) == "Failed"
                && p.status.as_ref().and_then(|s| s.reason.as_deref())
                    == Some("UnexpectedAdmissionError")
        },
    )
    .await?;
    let message = refused.status.as_ref().and_then(|s| s.message.clone());
    ensure!(
        message.as_deref()
            == Some(
                "Allocate failed due to requested number of devices unavailable for \
                 nvidia.com/gpu. Requested: 2, Available: 0, which is unexpected"
            ),
        "{message:?}"
    );
    let warned = events_of(&stack, "gpu-third", "UnexpectedAdmissionError")?;
    ensure!(
        warned.contains("Requested: 2, Available: 0"),
        "events: {warned}"
    );
    ensure!(
        uid(&refused).is_empty() || runtime.inspect_main(&uid(&refused))?.is_none(),
        "a refused pod gets no container"
    );
    let first_now = runtime
        .inspect_main(&uid(&first))?
        .context("first pod's container")?;
    ensure!(
        assigned(&first_now) == a,
        "the first pod keeps its device: {first_now}"
    );

    // A restarted agent takes the assignment back from the containers' labels instead
    // of handing devices out again: with `gpu-first` gone (its device free) and
    // `gpu-second` still holding the other, a pod created after the restart gets the
    // free one.
    let api = pods(&stack).await?;
    api.delete("gpu-first", &DeleteParams::default()).await?;
    for _ in 0..120 {
        if api.get_opt("gpu-first").await?.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        api.get_opt("gpu-first").await?.is_none(),
        "gpu-first was not deleted\n{}",
        stack.logs()
    );
    stack.agent(device)?.restart()?;
    // The restarted agent lists its containers before the new pod reaches it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fourth = create(&stack, &gpu_pod("gpu-fourth", device, "1")).await?;
    let fourth_inspect = wait_inspect(runtime, &uid(&fourth), &stack).await?;
    let second_now = runtime
        .inspect_main(&uid(&second))?
        .context("second pod's container")?;
    ensure!(
        assigned(&fourth_inspect) == a && assigned(&second_now) == b,
        "after the agent restarted: gpu-fourth got {:?}, gpu-second holds {:?}",
        assigned(&fourth_inspect),
        assigned(&second_now)
    );
    // (On the Docker Engine the container cannot start and the crash-loop back-off
    // recreates it, with the same device.)
    ensure!(
        matches!(runtime, Runtime::DockerEngine)
            || second_now.get("Id") == second_inspect.get("Id"),
        "a running container is kept across the agent restart"
    );
    Ok((stack, first_inspect, second_inspect))
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_engine_gets_the_nvidia_device_request_with_the_assigned_ids() -> Result<()> {
    const DEVICE: &str = "gpus-docker-pi-01";
    let _cleanup = Cleanup(Runtime::DockerEngine, DEVICE);
    let ids = ["gpus-docker-gpu-a", "gpus-docker-gpu-b"];
    let (stack, first, _) = scenario(Runtime::DockerEngine, DEVICE, ids, &[]).await?;
    let (assigned, requests) = (assigned_devices(&first), device_requests(&first));
    ensure!(
        requests
            == serde_json::json!([{
                "Driver": "nvidia",
                "Count": 0,
                "DeviceIDs": [assigned],
                "Capabilities": [["gpu"]],
                "Options": null
            }]),
        "DeviceRequests: {requests}"
    );
    let visible = format!("NVIDIA_VISIBLE_DEVICES={assigned}");
    ensure!(
        env_of(&first).contains(&visible),
        "env: {:?}",
        env_of(&first)
    );
    // No NVIDIA runtime here: the Engine refuses to start it, and says why.
    let why = "could not select device driver \\\"nvidia\\\" with capabilities: [[gpu]]";
    let why_plain = "could not select device driver \"nvidia\" with capabilities: [[gpu]]";
    let seen = wait_start_error(&stack, why).await?;
    let failed = events_of(&stack, "gpu-second", "Failed")?;
    ensure!(
        failed.contains(why_plain),
        "events: {failed}; status: {}",
        brief_status(&seen)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_gets_the_visible_devices_variable_and_no_device_request() -> Result<()> {
    const DEVICE: &str = "gpus-podman-pi-01";
    let _cleanup = Cleanup(Runtime::Podman, DEVICE);
    let ids = ["gpus-podman-gpu-a", "gpus-podman-gpu-b"];
    let (stack, first, second) = scenario(Runtime::Podman, DEVICE, ids, &[]).await?;
    for inspect in [&first, &second] {
        let requests = inspect.pointer("/HostConfig/DeviceRequests");
        ensure!(
            requests.is_none_or(|r| r.is_null() || r.as_array().is_some_and(Vec::is_empty)),
            "Podman 4.3 keeps no device request: {requests:?}"
        );
        let visible = format!("NVIDIA_VISIBLE_DEVICES={}", assigned_devices(inspect));
        ensure!(
            env_of(inspect).contains(&visible),
            "env: {:?}",
            env_of(inspect)
        );
    }
    // Without the NVIDIA OCI hook nothing acts on the variable: the container runs
    // (without a GPU).
    wait_pod(
        &stack,
        "gpu-second",
        "Running",
        Duration::from_secs(60),
        |p| phase(p) == "Running",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_engine_in_cdi_mode_gets_cdi_device_names() -> Result<()> {
    const DEVICE: &str = "gpus-cdi-pi-01";
    let _cleanup = Cleanup(Runtime::DockerEngine, DEVICE);
    let ids = ["gpus-cdi-gpu-a", "gpus-cdi-gpu-b"];
    let extra = ["--gpu-request", "cdi"];
    let (stack, first, _) = scenario(Runtime::DockerEngine, DEVICE, ids, &extra).await?;
    let (assigned, requests) = (assigned_devices(&first), device_requests(&first));
    ensure!(
        requests
            == serde_json::json!([{
                "Driver": "cdi",
                "Count": 0,
                "DeviceIDs": [format!("nvidia.com/gpu={assigned}")],
                "Capabilities": null,
                "Options": null
            }]),
        "DeviceRequests: {requests}"
    );
    ensure!(
        !env_of(&first)
            .iter()
            .any(|e| e.starts_with("NVIDIA_VISIBLE_DEVICES=")),
        "no variable in cdi mode: {:?}",
        env_of(&first)
    );
    // Docker 20.10 has no CDI: it says so when starting the container.
    let why = "could not select device driver \\\"cdi\\\"";
    wait_start_error(&stack, why).await?;
    Ok(())
}
