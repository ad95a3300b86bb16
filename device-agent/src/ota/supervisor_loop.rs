//! `edge-agent supervise`: runs the agent of the current slot as its child and carries
//! out the [`Supervisor`]'s decisions. systemd only sees this process; with
//! `NotifyAccess=all` the child's READY and watchdog notifications still reach it.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child as Process, Command};
use tokio::signal::unix::{SignalKind, signal};

use super::cli_args::SuperviseArgs;
use super::slots::{OtaState, Outcome, SlotDir, SlotError};
use super::supervisor::{Action, Supervisor};
use super::{HEALTH_FILE_ENV, OTA_DIR_ENV, SUPERVISOR_PID_ENV, VERSION_ENV};
use crate::wall_clock::now_millis;

/// How often the health file, the deadline and the state file are looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long a stopped agent has to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(25);

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Slots(#[from] SlotError),
    #[error("cannot find the supervisor's own executable: {0}")]
    CurrentExe(std::io::Error),
    #[error("starting the agent {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("waiting for the agent: {0}")]
    Wait(std::io::Error),
    #[error("installing the signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs until the agent exits for good or the supervisor is told to stop; the status to
/// exit with.
pub async fn supervise(args: SuperviseArgs) -> Result<i32, SuperviseError> {
    let slots = SlotDir::new(&args.ota_dir);
    std::fs::create_dir_all(slots.root()).map_err(|source| SlotError::Io {
        path: slots.root().display().to_string(),
        source,
    })?;
    let installed = std::env::current_exe().map_err(SuperviseError::CurrentExe)?;
    let mut term = signal(SignalKind::terminate()).map_err(SuperviseError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(SuperviseError::Signals)?;
    let state = slots.load()?;
    let mut machine = Supervisor::new(state.clone());
    let mut running = Running {
        slots: &slots,
        state,
        installed: &installed,
        agent_args: &args.agent_args,
        child: None,
        spawn_failed: false,
    };
    let mut pending = machine.start(now_millis());
    let mut poll = tokio::time::interval(POLL);
    loop {
        for action in std::mem::take(&mut pending) {
            if let Some(code) = running.apply(action).await? {
                return Ok(code);
            }
        }
        if std::mem::take(&mut running.spawn_failed) {
            // as a shell reports a command that cannot be executed
            pending = machine.exited(127, now_millis());
            continue;
        }
        tokio::select! {
            status = running.wait() => {
                let status = status.map_err(SuperviseError::Wait)?;
                running.child = None;
                pending = machine.exited(exit_code(status), now_millis());
            }
            _ = poll.tick() => {
                let now = now_millis();
                if machine.on_trial() && slots.health_file().exists() {
                    pending = machine.healthy(now);
                } else if machine.on_trial() {
                    pending = machine.tick(now);
                } else {
                    match slots.load() {
                        Ok(state) if state.pending_trial().is_some() => {
                            tracing::info!(trial = ?state.trial, "a new agent version is staged: stopping the agent to start it on trial");
                            pending = machine.staged(state);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot read the OTA state"),
                    }
                }
            }
            _ = term.recv() => return Ok(running.stop().await),
            _ = int.recv() => return Ok(running.stop().await),
        }
    }
}

struct Running<'a> {
    slots: &'a SlotDir,
    /// The state last saved (which version each slot holds).
    state: OtaState,
    installed: &'a Path,
    agent_args: &'a [String],
    child: Option<Process>,
    /// The last `Run` could not start its binary.
    spawn_failed: bool,
}

impl Running<'_> {
    async fn apply(&mut self, action: Action) -> Result<Option<i32>, SuperviseError> {
        match action {
            Action::Save(state) => {
                log_outcome(&state);
                if let Err(e) = self.slots.save(&state) {
                    tracing::error!(error = %e, "cannot write the OTA state");
                }
                self.state = state;
            }
            Action::Run(slot) => {
                let path = self.slots.binary(slot, self.installed);
                let health = self.slots.health_file();
                let _ = std::fs::remove_file(&health);
                let version = self.state.slot_version(slot);
                tracing::info!(?slot, version, path = %path.display(), "starting the agent");
                let launch = Launch {
                    args: self.agent_args,
                    health: &health,
                    ota_dir: self.slots.root(),
                    version,
                };
                match spawn(&path, &launch) {
                    Ok(child) => self.child = Some(child),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the agent");
                        self.spawn_failed = true;
                    }
                }
            }
            Action::Stop => self.signal_term(),
            Action::Kill => {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill().await;
                }
            }
            Action::Exit(code) => return Ok(Some(code)),
        }
        Ok(None)
    }

    /// The child's exit (pending forever without a child).
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self.child.as_mut() {
            Some(child) => child.wait().await,
            None => std::future::pending().await,
        }
    }

    fn signal_term(&self) {
        let pid = self
            .child
            .as_ref()
            .and_then(Process::id)
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid
            && let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        {
            tracing::warn!(error = %e, "cannot signal the agent");
        }
    }

    /// The supervisor is stopped: so is the agent (its containers keep running).
    async fn stop(&mut self) -> i32 {
        self.signal_term();
        let Some(mut child) = self.child.take() else {
            return 0;
        };
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(Ok(status)) => exit_code(status),
            _ => {
                let _ = child.kill().await;
                0
            }
        }
    }
}

/// The journal's record of a trial's end (every state saved with no trial running
/// follows one: a commit or a rollback).
fn log_outcome(state: &OtaState) {
    if state.trial.is_some() {
        return;
    }
    match &state.last_outcome {
        Some(Outcome::Committed { version, .. }) => {
            tracing::info!(version, slot = ?state.current, "agent update committed: the new agent reported healthy");
        }
        Some(Outcome::RolledBack {
            version, reason, ..
        }) => {
            tracing::error!(version, reason, slot = ?state.current, "agent update rolled back: the previous agent runs again");
        }
        None => {}
    }
}

/// What the agent is started with.
struct Launch<'a> {
    args: &'a [String],
    health: &'a Path,
    ota_dir: &'a Path,
    /// The slot's signed version (`None`: the installed binary).
    version: Option<&'a str>,
}

fn spawn(path: &Path, launch: &Launch<'_>) -> Result<Process, SuperviseError> {
    let mut command = Command::new(path);
    match launch.version {
        Some(version) => command.env(VERSION_ENV, version),
        None => command.env_remove(VERSION_ENV),
    };
    command
        .args(launch.args)
        .env(HEALTH_FILE_ENV, launch.health)
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .env(OTA_DIR_ENV, launch.ota_dir)
        // systemd's WATCHDOG_PID names the supervisor; without it the agent pets the
        // watchdog itself (`NotifyAccess=all` lets its notifications through)
        .env_remove("WATCHDOG_PID")
        .spawn()
        .map_err(|source| SuperviseError::Spawn {
            path: path.display().to_string(),
            source,
        })
}

/// The exit status as a shell reports it (128 + signal).
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
