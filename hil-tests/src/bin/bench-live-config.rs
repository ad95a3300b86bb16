//! The live configuration benchmark: how long a ConfigMap change takes from the API write
//! (`PATCH` on the real kube-apiserver of the test bed's control plane) to the new content
//! in the file of the pod's volume on the device (the agent's state directory, what the
//! container's bind mount shows), through the gateway's watch, its translation, the
//! broker and the agent's atomic swap. See `--help` and docs/benchmarks.md#live-config-benchmark.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use edge_hil_tests::scenario::{create, is_ready, pod_manifest, uid, wait_node_ready, wait_pod};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Measures, on one machine, the time from a ConfigMap write to the new content in the
/// mounted file on the device, `--changes` times one after the other (each waits for the
/// previous to arrive, then 200 ms). Prints a Markdown table.
///
/// Needs: `eval "$(scripts/test-env.sh)"`, `cargo build --workspace --bins`, and the
/// control plane (`scripts/build-control-plane.sh`, found through
/// EDGE_CONTROL_PLANE_BIN_DIR).
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Changes timed (after 3 not counted).
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Run over Mosquitto instead of the gateway's embedded broker.
    #[arg(long)]
    mosquitto: bool,
}

const DEVICE: &str = "bench-livecfg-01";
/// A change not seen after this long fails the run (the goal is 10 s).
const GIVE_UP: Duration = Duration::from_secs(60);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Polls `file` every 2 ms until it holds `value`.
async fn arrival(file: &Path, value: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        if std::fs::read(file).is_ok_and(|c| c == value.as_bytes()) {
            return Ok(());
        }
        if started.elapsed() > GIVE_UP {
            bail!(
                "{value:?} did not reach {} within {GIVE_UP:?}",
                file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let broker = if args.mosquitto {
        BrokerKind::Mosquitto
    } else {
        BrokerKind::Embedded
    };
    let mut stack =
        Stack::start(StackOptions::fast(broker).on(ClusterBackend::ControlPlane)).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let cms: Api<ConfigMap> = Api::namespaced(stack.client().await?, &stack.namespace);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}, "data": {"value": "v0"}}))?,
    )
    .await?;
    let mut pod = serde_json::to_value(pod_manifest(
        "bench",
        &[("kubernetes.io/hostname", DEVICE)],
        true,
        "Always",
        "sleep 100000",
    ))?;
    pod["spec"]["automountServiceAccountToken"] = json!(false);
    pod["spec"]["volumes"] = json!([{"name": "config", "configMap": {"name": "bench"}}]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "config", "mountPath": "/etc/config"}]);
    // the namespace's default ServiceAccount may not exist yet
    let started = Instant::now();
    let pod = loop {
        match create(&stack, &serde_json::from_value(pod.clone())?).await {
            Ok(p) => break p,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("creating the pod: {e}; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    wait_pod(
        &stack,
        "bench",
        "bench ready",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;
    let file = stack
        .agent(DEVICE)?
        .state_dir()
        .join("pods")
        .join(uid(&pod))
        .join("volumes/config/value");
    arrival(&file, "v0").await.context("the first version")?;
    let mut samples = Vec::with_capacity(args.changes);
    for i in 1..=args.changes + 3 {
        let value = format!("v{i}");
        let written = Instant::now();
        cms.patch(
            "bench",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": value}})),
        )
        .await?;
        arrival(&file, &value).await?;
        if i > 3 {
            samples.push(written.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort();
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    println!(
        "| ConfigMap write → file on the device ({} changes, {}) p50 / p90 / p99 / max | {} / {} / {} / {} ms |",
        samples.len(),
        if args.mosquitto {
            "Mosquitto"
        } else {
            "embedded broker"
        },
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1]),
    );
    Ok(())
}
