//! The command lines of `edge-agent supervise` and `edge-agent ota`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::parse_duration;

pub const DEFAULT_OTA_DIR: &str = "/var/lib/edge-agent/ota";
pub const DEFAULT_PUBLIC_KEY: &str = "/etc/edge-agent/ota-signing.pub";

/// `edge-agent supervise [--ota-dir DIR] -- run --config /etc/edge-agent/agent.toml`.
#[derive(Debug, Clone, Args)]
pub struct SuperviseArgs {
    /// The OTA directory: slots `bin/a`, `bin/b`, `state.json`, the health file.
    #[arg(long, env = "EDGE_AGENT_OTA_DIR", default_value = DEFAULT_OTA_DIR)]
    pub ota_dir: PathBuf,
    /// The agent's own arguments, after `--`.
    #[arg(last = true, required = true)]
    pub agent_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OtaArgs {
    #[command(subcommand)]
    pub command: OtaCommand,
}

#[derive(Debug, Subcommand)]
pub enum OtaCommand {
    /// Verify a signed agent binary and stage it in the inactive slot; the supervisor
    /// stops the running agent (containers keep running) and starts it on trial.
    Stage(StageArgs),
    /// Print the OTA state (current slot and version, trial, last outcome) as JSON.
    Status {
        #[arg(long, env = "EDGE_AGENT_OTA_DIR", default_value = DEFAULT_OTA_DIR)]
        ota_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct StageArgs {
    #[arg(long, env = "EDGE_AGENT_OTA_DIR", default_value = DEFAULT_OTA_DIR)]
    pub ota_dir: PathBuf,
    /// The pinned ed25519 public key (PEM) that must have signed the binary.
    #[arg(long, env = "EDGE_AGENT_OTA_PUBLIC_KEY", default_value = DEFAULT_PUBLIC_KEY)]
    pub public_key: PathBuf,
    /// The new agent binary.
    #[arg(long)]
    pub binary: PathBuf,
    /// Its signature: 64 raw bytes or base64, over the manifest of `--version` and the
    /// binary's SHA-256.
    #[arg(long)]
    pub signature: PathBuf,
    /// The version the signature names.
    #[arg(long)]
    pub version: String,
    /// How long the new agent has to connect and report healthy before it is rolled back.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub health_deadline: Duration,
}
