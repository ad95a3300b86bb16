//! `edge-gateway`: parse flags, set up logging, call the library.

use clap::{Parser, Subcommand};
use edge_gateway::config::{GatewayConfig, RunArgs};
use edge_gateway::enrollment::cli::{BrokerConfigArgs, EnrollArgs, RevokeArgs};
use edge_gateway::local_endpoints::check_ready::{CheckReadyArgs, check_ready};
use tokio_util::sync::CancellationToken;

/// Virtual kubelet for a fleet of edge devices: every device a Kubernetes Node, every
/// pod bound to it delivered over MQTT, `kubectl logs` through the gateway.
#[derive(Debug, Parser)]
#[command(name = "edge-gateway", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (embedded MQTT broker and store by default).
    Run(Box<RunArgs>),
    /// Enroll a device: issue its certificate and write its bundle directory.
    Enroll(EnrollArgs),
    /// Retire a device for good (`revoke` is the same command): it is refused from now
    /// on and listed in the broker's CRL; the running gateway deletes its Node, Lease
    /// and pods (their controllers reschedule them elsewhere), purges its store entries
    /// and tells the device to remove its containers, volumes, state and key and stop
    /// (at once if it is online, else when it next connects).
    #[command(visible_alias = "revoke")]
    Retire(RevokeArgs),
    /// Write a production broker configuration (e.g. `broker-config mosquitto`).
    BrokerConfig(BrokerConfigArgs),
    /// Print a new bootstrap token as a Secret manifest (`| kubectl apply -f -`).
    BootstrapToken(edge_gateway::enrollment::bootstrap_cli::BootstrapTokenArgs),
    /// Write the bootstrap directory every board of a fleet gets (zero-touch enrollment).
    BootstrapFile(edge_gateway::enrollment::bootstrap_cli::BootstrapFileArgs),
    /// Rotate the fleet CA without reflashing devices: `begin` (a new CA issues, both
    /// are trusted), `status` (devices by CA), `finish` (the previous CA is dropped).
    CaRotation(edge_gateway::enrollment::ca_rotation_cli::CaRotationArgs),
    /// The signed agent binaries rollouts serve: `add` (checked with the fleet's key),
    /// `list`.
    AgentRelease(edge_gateway::agent_rollout::cli::AgentReleaseArgs),
    /// Exit 0 if the gateway on this host is ready (its `/readyz` on --metrics-listen),
    /// 1 with the reason otherwise: the container's readiness probe.
    CheckReady(CheckReadyArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Enroll(a) => Ok(edge_gateway::enrollment::cli::run_enroll(a)?),
        Command::Retire(a) => Ok(edge_gateway::enrollment::cli::run_revoke(a)?),
        Command::BrokerConfig(a) => Ok(edge_gateway::enrollment::cli::run_broker_config(a)?),
        Command::BootstrapToken(a) => {
            Ok(edge_gateway::enrollment::bootstrap_cli::run_bootstrap_token(a)?)
        }
        Command::BootstrapFile(a) => Ok(
            edge_gateway::enrollment::bootstrap_cli::run_bootstrap_file(a)?,
        ),
        Command::CaRotation(a) => Ok(edge_gateway::enrollment::ca_rotation_cli::run_ca_rotation(
            a,
        )?),
        Command::AgentRelease(a) => Ok(edge_gateway::agent_rollout::cli::run_agent_release(a)?),
        Command::CheckReady(a) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let body = runtime.block_on(check_ready(&a))?;
            println!("{body}");
            Ok(())
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_filter)?)
        .init();
    let config = GatewayConfig::try_from(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stop.cancel();
        });
        edge_gateway::gateway::run(config, token).await?;
        Ok(())
    })
}
