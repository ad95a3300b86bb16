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
        Some(Command::Supervise(args)) => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_writer(std::io::stderr)
                .init();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let code = runtime.block_on(edge_agent::ota::supervisor_loop::supervise(args))?;
            drop(runtime);
            std::process::exit(code);
        }
        Some(Command::Ota(args)) => ota_command(args.command),
        Some(Command::Run(args)) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_new(args.log_filter())
                        .context("--log-filter is not a valid filter")?,
                )
                .with_writer(std::io::stderr)
                .init();
            edge_agent::ota::bind_to_supervisor()?;
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
                match args.bootstrap.settings() {
                    Some(settings) => run_enrolled(&mut args, &settings, &shutdown).await,
                    None => {
                        let config = args.resolve()?;
                        edge_agent::agent::run(config, shutdown)
                            .await
                            .map_err(anyhow::Error::from)
                    }
                }
            })?;
            if let Stopped::RefusedAsRetired { reason } = stopped {
                tracing::error!(
                    reason,
                    "this device id is retired: the gateway will not enroll it again; exiting with status \
                     {RETIRED_EXIT_CODE} (systemd does not restart it). To use the board again, give it another id \
                     (--device-id-template) or ask the operator to enroll it anew"
                );
                drop(runtime);
                std::process::exit(RETIRED_EXIT_CODE);
            }
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

/// `edge-agent ota stage|status`.
fn ota_command(command: edge_agent::ota::cli_args::OtaCommand) -> anyhow::Result<()> {
    use edge_agent::ota::cli_args::OtaCommand;
    use edge_agent::ota::slots::SlotDir;
    match command {
        OtaCommand::Stage(args) => {
            let signature = std::fs::read(&args.signature)
                .with_context(|| format!("reading {}", args.signature.display()))?;
            let trial = SlotDir::new(&args.ota_dir).stage(
                &args.public_key,
                &args.version,
                &args.binary,
                &signature,
                args.health_deadline.as_secs().max(1),
            )?;
            println!(
                "staged version {} (sha256 {}) in slot {:?}; the supervisor starts it on trial (deadline {} s)",
                trial.version, trial.sha256, trial.slot, trial.deadline_seconds
            );
            Ok(())
        }
        OtaCommand::Status { ota_dir } => {
            let state = SlotDir::new(&ota_dir).load()?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(())
        }
    }
}

/// Enrolls if needed, then runs the agent under the device's own certificate; when the
/// renewal is due, stops the agent (containers keep running), renews over the current
/// identity and runs it again with the new certificate.
async fn run_enrolled(
    args: &mut edge_agent::cli::RunArgs,
    settings: &edge_agent::bootstrap::BootstrapSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Stopped> {
    use edge_agent::bootstrap::{self, renewal};
    let mut identity = match enroll(settings, shutdown).await? {
        Ok(identity) => identity,
        Err(stopped) => return Ok(stopped),
    };
    let dir = bootstrap::identity_dir(settings)?;
    let mut renew_at =
        renewal::renewal_at(identity.not_before, identity.not_after, renewal::jitter());
    loop {
        args.use_identity(&identity);
        let config = args.resolve()?;
        let run = shutdown.child_token();
        let now = now_unix();
        let wait = std::time::Duration::from_secs(renew_at.saturating_sub(now).max(0) as u64);
        tracing::info!(device = %identity.device_id, renew_in = ?wait, "certificate renewal scheduled");
        let timer = {
            let run = run.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                run.cancel();
            })
        };
        let stopped = edge_agent::agent::run(config, run).await;
        timer.abort();
        let stopped = stopped?;
        if shutdown.is_cancelled() || !matches!(stopped, Stopped::Shutdown) {
            return Ok(stopped);
        }
        // Bounded: the agent is off the broker meanwhile (a gateway without enrollment
        // never answers).
        let renewed = tokio::time::timeout(
            renewal::RENEWAL_TIMEOUT,
            renewal::renew(&identity, &dir, settings.timings, shutdown),
        )
        .await
        .unwrap_or(Err(bootstrap::BootstrapError::TimedOut(
            renewal::RENEWAL_TIMEOUT,
        )));
        match renewed {
            Ok(facts) => {
                identity.not_before = facts.not_before;
                identity.not_after = facts.not_after;
                renew_at =
                    renewal::renewal_at(facts.not_before, facts.not_after, renewal::jitter());
            }
            Err(bootstrap::BootstrapError::Cancelled) => return Ok(Stopped::Shutdown),
            Err(e) => {
                let retry = renewal::retry_after(now_unix(), identity.not_after);
                tracing::warn!(error = %e, retry_in = ?retry, "certificate renewal failed; running on with the current certificate");
                renew_at = now_unix() + retry.as_secs() as i64;
                if identity.not_after <= now_unix() {
                    tracing::warn!(
                        "the device certificate expired: enrolling again with the bootstrap file"
                    );
                    identity = match enroll(settings, shutdown).await? {
                        Ok(identity) => identity,
                        Err(stopped) => return Ok(stopped),
                    };
                    renew_at = renewal::renewal_at(
                        identity.not_before,
                        identity.not_after,
                        renewal::jitter(),
                    );
                }
            }
        }
    }
}

/// Zero-touch enrollment: the identity, or how the agent stops when the gateway refuses
/// this device for good (a retired id).
async fn enroll(
    settings: &edge_agent::bootstrap::BootstrapSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Result<edge_agent::bootstrap::DeviceIdentity, Stopped>> {
    match edge_agent::bootstrap::ensure_identity(settings, shutdown).await {
        Ok(identity) => Ok(Ok(identity)),
        Err(e) if e.is_retired() => Ok(Err(Stopped::RefusedAsRetired {
            reason: e.to_string(),
        })),
        Err(e) => Err(anyhow::Error::from(e).context("zero-touch enrollment")),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
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
