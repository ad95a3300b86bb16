//! `edge-agent`: parse the command line, set up tracing, call the library.

use anyhow::Context as _;
use clap::Parser as _;
use edge_agent::agent::Stopped;
use edge_agent::cli::{Cli, Command};
use edge_agent::config::DEFAULT_CONFIG_TOML;
use edge_agent::retirement::RETIRED_EXIT_CODE;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_CONFIG_TOML}");
        return Ok(());
    }
    match cli.command {
        None => {
            anyhow::bail!(
                "no command given: try `edge-agent run --config /etc/edge-agent/agent.toml` or `edge-agent --help`"
            )
        }
        Some(Command::Install(args)) => {
            let path = edge_agent::bundle_install::install(&args.bundle, &args.prefix)?;
            println!("installed {}", path.display());
            println!("start the agent: systemctl enable --now edge-agent");
            Ok(())
        }
        Some(Command::Run(args)) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_new(args.log_filter())
                        .context("--log-filter is not a valid filter")?,
                )
                .with_writer(std::io::stderr)
                .init();
            let mut args = args;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let stopped = runtime.block_on(async {
                let shutdown = CancellationToken::new();
                let signal = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    signal.cancel();
                });
                if let Some(settings) = args.bootstrap.settings() {
                    let identity = edge_agent::bootstrap::ensure_identity(&settings, &shutdown)
                        .await
                        .context("zero-touch enrollment")?;
                    args.use_identity(&identity);
                }
                let config = args.resolve()?;
                edge_agent::agent::run(config, shutdown)
                    .await
                    .map_err(anyhow::Error::from)
            })?;
            if let Stopped::Retired { reason, failures } = stopped {
                for failure in &failures {
                    tracing::error!("retired device wipe incomplete: {failure}");
                }
                tracing::error!(
                    reason,
                    "this device was retired by its gateway: its pods, pod volumes, local state, key and certificate are removed; \
                     exiting with status {RETIRED_EXIT_CODE} (systemd does not restart it). Enroll the board under a new id to use it again"
                );
                drop(runtime);
                std::process::exit(RETIRED_EXIT_CODE);
            }
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
