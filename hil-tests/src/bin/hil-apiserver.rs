//! `hil-apiserver`: runs the Kubernetes API server emulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};

/// Kubernetes API server emulator for tests: HTTPS with a generated CA, bearer-token auth,
/// a kubeconfig written into --dir, plus a scheduler and node lifecycle controller.
#[derive(Debug, Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Directory for the generated kubeconfig, CA and certificates (created if missing).
    #[arg(long, env = "HIL_APISERVER_DIR")]
    dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, env = "HIL_APISERVER_BIND", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Time without a node Lease renewal after which a node becomes Ready=Unknown and
    /// tainted unreachable (e.g. 50s, 2m, 500ms).
    #[arg(long, env = "HIL_APISERVER_NODE_LEASE_GRACE", default_value = "50s", value_parser = parse_duration)]
    node_lease_grace: Duration,
    /// Interval of watch bookmarks.
    #[arg(long, env = "HIL_APISERVER_BOOKMARK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    bookmark_interval: Duration,
    /// Do not run the scheduler (pods stay unbound until something binds them).
    #[arg(long, env = "HIL_APISERVER_NO_SCHEDULER")]
    no_scheduler: bool,
    /// Run the full ServiceAccount admission plugin like kube-apiserver's default: pods need
    /// an existing ServiceAccount and get the kube-api-access projected token volume.
    #[arg(long, env = "HIL_APISERVER_SERVICE_ACCOUNT_TOKEN_VOLUMES")]
    service_account_token_volumes: bool,
    /// Do not run the node lifecycle controller.
    #[arg(long, env = "HIL_APISERVER_NO_NODE_LIFECYCLE")]
    no_node_lifecycle: bool,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `edge_hil_tests=debug`.
    #[arg(long, env = "HIL_APISERVER_LOG", default_value = "info")]
    log_filter: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 50s, 2m, 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_filter)
                .context("invalid --log-filter")?,
        )
        .init();
    let mut config = ApiServerConfig::new(&args.dir);
    config.bind = args.bind;
    config.node_lease_grace = args.node_lease_grace;
    config.bookmark_interval = args.bookmark_interval;
    config.scheduler = !args.no_scheduler;
    config.node_lifecycle = !args.no_node_lifecycle;
    config.service_account_token_volumes = args.service_account_token_volumes;
    let server = ApiServer::start(config)
        .await
        .context("starting the API server emulator")?;
    println!("url: {}", server.url());
    println!("kubeconfig: {}", server.kubeconfig_path().display());
    println!(
        "kubelet client CA: {}",
        server.kubelet_client_ca_path().display()
    );
    println!(
        "try: kubectl --kubeconfig {} get nodes",
        server.kubeconfig_path().display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
