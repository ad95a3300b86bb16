//! Agent updates over the air, installed A/B with a health-gated rollback: the signed
//! binary is verified and put in the inactive slot, the supervisor runs it on trial, and
//! restores the previous slot by itself unless the new agent reports healthy in time.
//!
//! # Layout
//!
//! | module | what is there |
//! |---|---|
//! | [`signature`] | the pinned ed25519 key (PEM), the signed manifest (version, SHA-256), verification with bounded memory |
//! | [`slots`] | the slot directory: `bin/a`, `bin/b`, `state.json` (current slot, trial, last outcome) written atomically; staging a verified binary |
//! | [`supervisor`] | pure: what the supervisor does on start, a healthy child, a child exit, a tick, a newly staged trial |
//! | [`supervisor_loop`] | the thin async loop of `edge-agent supervise`: the child process, the health file, signals |
//! | [`cli_args`] | the `supervise` and `ota` command lines |
//! | [`download`] | pure: an update ordered over MQTT (`down/agent-update`): answered from what the device knows, or fetched in chunks, resumed, verified, staged; the status reported (also derived from `state.json`) |
//! | [`incoming`] | `incoming/<version>.part`: the download written in order, removed on failure; its size, digest and signature checked before it is staged |
//!
//! The files under the OTA directory (default `/var/lib/edge-agent/ota`):
//! `state.json`, `bin/a`, `bin/b`, `incoming/<version>.part` (a download over MQTT), and
//! `healthy`, the file the running agent creates
//! (path in [`HEALTH_FILE_ENV`]) once it is connected to its broker and has listed
//! (adopted) its containers.

pub mod cli_args;
pub mod download;
pub mod incoming;
pub mod signature;
pub mod slots;
pub mod supervisor;
pub mod supervisor_loop;

/// The environment variable naming the file the agent creates once healthy; set by the
/// supervisor for its child.
pub const HEALTH_FILE_ENV: &str = "EDGE_AGENT_OTA_HEALTH_FILE";

/// The environment variable with the supervisor's process id; set for its child.
pub const SUPERVISOR_PID_ENV: &str = "EDGE_AGENT_SUPERVISOR_PID";

/// The environment variable with the signed version of the slot the supervisor started
/// its child from (absent for the installed binary).
pub const VERSION_ENV: &str = "EDGE_AGENT_OTA_VERSION";

/// The environment variable with the OTA directory; the supervisor sets it for its child
/// (the same one `--ota-dir` and the `ota` commands read).
pub const OTA_DIR_ENV: &str = "EDGE_AGENT_OTA_DIR";

/// Whether this agent runs under `edge-agent supervise`.
pub fn supervised() -> bool {
    std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .is_some()
}

/// The version this agent reports: under the supervisor the signed version of the slot
/// it runs from, else (and for the installed binary) the build's.
pub fn running_version() -> String {
    version_of(supervised(), std::env::var(VERSION_ENV).ok())
}

fn version_of(supervised: bool, slot_version: Option<String>) -> String {
    slot_version
        .filter(|v| supervised && !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

/// Whether this agent can update itself over MQTT: under the supervisor, with a pinned
/// public key at `public_key`; `Err(why)` otherwise.
pub fn capability(public_key: &std::path::Path) -> Result<(), String> {
    capability_of(supervised(), public_key)
}

fn capability_of(supervised: bool, public_key: &std::path::Path) -> Result<(), String> {
    if !supervised {
        return Err(
            "this agent does not run under `edge-agent supervise`, so it cannot update itself"
                .to_owned(),
        );
    }
    if !public_key.exists() {
        return Err(format!(
            "no OTA public key is pinned on this device ({} is missing)",
            public_key.display()
        ));
    }
    Ok(())
}

/// The supervisor of this agent died before the agent could bind to it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the supervisor (pid {0}) is gone: this agent must not run without it (a new supervisor starts its own)"
)]
pub struct SupervisorGone(i32);

/// Under a supervisor, the agent is terminated (SIGTERM: it stops, its containers keep
/// running) when the supervisor dies, so a killed supervisor never leaves an agent
/// behind to run beside the one its successor starts. No-op without a supervisor.
pub fn bind_to_supervisor() -> Result<(), SupervisorGone> {
    // (`supervised()` reads the same variable)
    let Some(supervisor) = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return Ok(());
    };
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
    {
        tracing::warn!(error = %e, "cannot tie this agent's life to its supervisor's");
    }
    // the supervisor may have died before the line above
    if rustix::process::Pid::as_raw(rustix::process::getppid()) != supervisor {
        return Err(SupervisorGone(supervisor));
    }
    Ok(())
}

/// Marks the agent healthy for its supervisor (no-op without one). Errors are logged:
/// an agent that cannot write the file is rolled back, which is what a broken device
/// deserves.
pub fn report_healthy() {
    let Some(path) = std::env::var_os(HEALTH_FILE_ENV) else {
        return;
    };
    let pid = std::process::id().to_string();
    if let Err(e) = std::fs::write(&path, pid) {
        tracing::warn!(error = %e, path = ?path, "cannot tell the supervisor this agent is healthy");
    }
}

#[cfg(test)]
mod tests;
