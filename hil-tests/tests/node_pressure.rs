//! Disk pressure on the real control plane: the agent's state directory (its node
//! filesystem) is a 32 MiB tmpfs and its hard eviction threshold `nodefs.available<50%`.
//! A BestEffort pod fills its emptyDir there: the Node turns `DiskPressure=True` (with
//! the node lifecycle controller's `node.kubernetes.io/disk-pressure` taint), the
//! BestEffort pod is evicted as the kubelet does it (`kubectl get pod` shows `Evicted`,
//! an `Evicted` Event names the resource, it is not restarted) while a Guaranteed pod
//! keeps running; the evicted pod's emptyDir is removed, so the pressure ends and the
//! condition turns False again. The Node also lists the device's images.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use edge_hil_tests::scenario::{
    create, is_ready, phase, pod_manifest, restart_count, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};
use serde_json::json;

const DEVICE: &str = "node-pressure-pi-01";

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self> {
        std::fs::create_dir_all(at)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()?;
        ensure!(
            out.status.success(),
            "mount tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn kubectl(stack: &Stack, args: &[&str]) -> Result<String> {
    Ok(stack.kubectl.run(args)?)
}

fn node_condition(stack: &Stack, kind: &str) -> Result<String> {
    kubectl(
        stack,
        &[
            "get",
            "node",
            DEVICE,
            "-o",
            &format!("jsonpath={{.status.conditions[?(@.type==\"{kind}\")].status}}"),
        ],
    )
}

async fn wait_condition(stack: &Stack, kind: &str, want: &str, timeout: Duration) -> Result<()> {
    eventually(&format!("{kind}={want}"), timeout, || {
        let got = node_condition(stack, kind).map_err(|e| e.to_string());
        async move {
            let got = got?;
            if got.trim() == want {
                Ok(Some(()))
            } else {
                Err(format!("{kind}={got}"))
            }
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

fn taints(stack: &Stack) -> Result<String> {
    kubectl(
        stack,
        &[
            "get",
            "node",
            DEVICE,
            "-o",
            "jsonpath={.spec.taints[*].key}",
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filling_disk_turns_disk_pressure_true_and_evicts_the_best_effort_pod() -> Result<()> {
    let mut options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    options.agent_args = [
        "--eviction-hard",
        "nodefs.available<50%",
        "--eviction-monitoring-interval-seconds",
        "1",
        "--eviction-pressure-transition-period-seconds",
        "15",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut stack = Stack::start(options).await?;
    // the agent's state directory (pod volumes included) on a small file system
    let state_dir = stack.dir().join(format!("agent-{DEVICE}"));
    let _tmpfs = Tmpfs::mount(&state_dir, "32m")?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    wait_condition(&stack, "DiskPressure", "False", Duration::from_secs(30)).await?;
    // status.images lists the device's images
    let images = eventually("status.images", Duration::from_secs(30), || {
        let out = kubectl(
            &stack,
            &[
                "get",
                "node",
                DEVICE,
                "-o",
                "jsonpath={.status.images[*].names}",
            ],
        )
        .map_err(|e| e.to_string());
        async move {
            let out = out?;
            Ok(out.contains("localhost/busybox:test").then_some(out))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    ensure!(images.contains("busybox"), "{images}");

    let on_device = [("kubernetes.io/hostname", DEVICE)];
    let mut steady = pod_manifest("steady", &on_device, true, "Always", "sleep 3600");
    let resources = json!({"limits": {"cpu": "100m", "memory": "64Mi"}});
    steady.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(resources)?);
    create(&stack, &steady).await?;
    wait_pod(
        &stack,
        "steady",
        "steady ready",
        Duration::from_secs(60),
        is_ready,
    )
    .await?;

    // 20 MB in its emptyDir: 12 of 32 MiB left, under the 50 % threshold
    let mut filler = pod_manifest(
        "filler",
        &on_device,
        true,
        "Always",
        "sleep 2; head -c 20000000 /dev/zero > /scratch/fill; sleep 3600",
    );
    let spec = filler.spec.as_mut().unwrap();
    spec.volumes = Some(vec![serde_json::from_value(
        json!({"name": "scratch", "emptyDir": {}}),
    )?]);
    spec.containers[0].volume_mounts = Some(vec![serde_json::from_value(
        json!({"name": "scratch", "mountPath": "/scratch"}),
    )?]);
    create(&stack, &filler).await?;

    wait_condition(&stack, "DiskPressure", "True", Duration::from_secs(60)).await?;
    let describe = kubectl(&stack, &["describe", "node", DEVICE])?;
    ensure!(
        describe.lines().any(|l| l.contains("DiskPressure")
            && l.contains("True")
            && l.contains("KubeletHasDiskPressure")),
        "kubectl describe node shows the condition:\n{describe}"
    );
    // the node lifecycle controller taints the node from the condition, as for a kubelet
    eventually("the disk-pressure taint", Duration::from_secs(15), || {
        let t = taints(&stack).map_err(|e| e.to_string());
        async move {
            let t = t?;
            Ok(t.contains("node.kubernetes.io/disk-pressure").then_some(()))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}"))?;

    let evicted = wait_pod(
        &stack,
        "filler",
        "filler evicted",
        Duration::from_secs(60),
        |p| {
            phase(p) == "Failed"
                && p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
        },
    )
    .await?;
    let message = evicted
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        message.starts_with("The node was low on resource: ephemeral-storage."),
        "{message}"
    );
    let ns = stack.namespace.clone();
    let get = kubectl(&stack, &["get", "pod", "-n", &ns, "filler"])?;
    ensure!(get.contains("Evicted"), "kubectl get pod: {get}");
    let events = kubectl(
        &stack,
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "involvedObject.name=filler,reason=Evicted",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )?;
    ensure!(
        events.contains("The node was low on resource: ephemeral-storage"),
        "Evicted event: {events}"
    );

    // the pressure ends once the evicted pod's emptyDir is gone
    wait_condition(&stack, "DiskPressure", "False", Duration::from_secs(60)).await?;
    eventually("the taint removed", Duration::from_secs(30), || {
        let t = taints(&stack).map_err(|e| e.to_string());
        async move {
            let t = t?;
            Ok((!t.contains("node.kubernetes.io/disk-pressure")).then_some(()))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}"))?;
    // the evicted pod is not restarted; the Guaranteed one ran throughout
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api = edge_hil_tests::scenario::pods(&stack).await?;
    let filler = api.get("filler").await?;
    ensure!(
        phase(&filler) == "Failed" && restart_count(&filler) == 0,
        "filler: {:?}",
        filler.status
    );
    let steady = api.get("steady").await?;
    ensure!(
        phase(&steady) == "Running" && is_ready(&steady) && restart_count(&steady) == 0,
        "steady: {:?}",
        steady.status
    );
    Ok(())
}
