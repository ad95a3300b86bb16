//! `hil-controlplane`: runs the real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler) until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use edge_hil_tests::controlplane::{ControlPlane, ControlPlaneConfig};

/// The upstream Kubernetes control plane on 127.0.0.1, built from the Go modules by
/// scripts/build-control-plane.sh. Writes into --dir: admin.kubeconfig (cluster admin),
/// gateway.kubeconfig (the edge-gateway ServiceAccount under the shipped ClusterRole),
/// pki/kubelet-client-ca.crt (for the gateway's --kubelet-client-ca), logs/, and a
/// `ready` file once everything is healthy. Ctrl-C or SIGTERM stops every component.
#[derive(Debug, Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Directory for data, certificates, kubeconfigs and logs (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// kube-controller-manager's --node-monitor-grace-period in seconds (default: its
    /// own default, 50 s).
    #[arg(long)]
    node_monitor_grace_seconds: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = ControlPlaneConfig::new(&args.dir);
    config.node_monitor_grace_period = args.node_monitor_grace_seconds.map(Duration::from_secs);
    let cp = tokio::task::spawn_blocking(move || ControlPlane::start(config))
        .await?
        .context("starting the control plane")?;
    let ready = args.dir.join("ready");
    std::fs::write(&ready, cp.url()).with_context(|| format!("writing {}", ready.display()))?;
    println!("{} serving at {}", cp.server_version(), cp.url());
    println!(
        "  admin:   kubectl --kubeconfig {}",
        cp.admin_kubeconfig().display()
    );
    println!(
        "  gateway: --kubeconfig {}",
        cp.gateway_kubeconfig().display()
    );
    println!("  kubelet client CA: {}", cp.kubelet_client_ca().display());
    println!("  logs:    {}", cp.dir().join("logs").display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = std::fs::remove_file(&ready);
    drop(cp);
    Ok(())
}
