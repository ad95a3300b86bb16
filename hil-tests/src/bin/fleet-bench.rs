//! Runs the fleet benchmark for each fleet size and broker and appends one JSON line
//! per run to `--out`. `scripts/bench-fleet.sh` drives it and renders docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use edge_hil_tests::fleet_bench::{BenchConfig, run};
use edge_hil_tests::stack::{BrokerKind, ClusterBackend};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Broker {
    Embedded,
    Mosquitto,
}

/// The real edge-gateway against N simulated devices (the MQTT protocol with an instant
/// fake runtime), with the API emulator in this process or, with --control-plane, the
/// real Kubernetes control plane.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Fleet sizes to run, e.g. `--devices 100,1000,10000`.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    devices: Vec<usize>,
    /// Brokers to run each size on.
    #[arg(long, value_delimiter = ',', default_value = "embedded,mosquitto")]
    brokers: Vec<Broker>,
    /// Run against the real Kubernetes control plane (etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler; built by scripts/build-control-plane.sh,
    /// or from $EDGE_CONTROL_PLANE_BIN_DIR), started fresh for each run, with the gateway
    /// under its own ServiceAccount, instead of the API emulator.
    #[arg(long)]
    control_plane: bool,
    /// Pods created for the latency measurement.
    #[arg(long, default_value_t = 200)]
    pods: usize,
    /// Pods created per second.
    #[arg(long, default_value_t = 10.0)]
    pod_rate: f64,
    /// Idle measurement window, seconds (at least two lease periods).
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Device heartbeat interval, seconds (the agent's default is 10).
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Devices connecting per second.
    #[arg(long, default_value_t = 500)]
    connect_rate: usize,
    /// JSON lines output, one result per run (appended).
    #[arg(long, default_value = "target/fleet-bench/results.jsonl")]
    out: PathBuf,
    /// Working directory for logs and stores.
    #[arg(long, default_value = "target/fleet-bench/work")]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    for &devices in &args.devices {
        for &broker in &args.brokers {
            let broker = match broker {
                Broker::Embedded => BrokerKind::Embedded,
                Broker::Mosquitto => BrokerKind::Mosquitto,
            };
            let (api, api_name) = if args.control_plane {
                (ClusterBackend::ControlPlane, "control plane")
            } else {
                (ClusterBackend::Emulator, "emulator")
            };
            let dir = args.work_dir.join(
                format!(
                    "{devices}-{broker:?}{}",
                    if args.control_plane {
                        "-controlplane"
                    } else {
                        ""
                    }
                )
                .to_lowercase(),
            );
            let _ = std::fs::remove_dir_all(&dir);
            let config = BenchConfig {
                devices,
                broker,
                api,
                pods: args.pods,
                pod_rate: args.pod_rate,
                idle_window: Duration::from_secs(args.idle_seconds),
                heartbeat_interval: Duration::from_secs(args.heartbeat_seconds),
                connect_rate: args.connect_rate,
                dir,
            };
            eprintln!("[fleet-bench] === {devices} devices, {broker:?} broker, {api_name} ===");
            let result = run(&config)
                .await
                .with_context(|| format!("{devices} devices on {broker:?}, {api_name}"))?;
            let line = serde_json::to_string(&result)?;
            println!("{line}");
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args.out)?;
            writeln!(f, "{line}")?;
        }
    }
    Ok(())
}
