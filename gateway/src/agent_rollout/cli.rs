//! `edge-gateway agent-release add|list`: the signed agent binaries the gateway serves to
//! rollouts ([`super::catalog`]).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::catalog::{CatalogError, ReleaseCatalog};
use crate::enrollment::EnrollmentError;
use crate::enrollment::layout::EnrollmentLayout;
use crate::enrollment::ota_key::{FleetUpdateKey, OTA_PUBLIC_KEY};
use crate::store::StoreDirArg;

#[derive(Debug, Clone, Args)]
pub struct AgentReleaseArgs {
    #[command(subcommand)]
    pub command: AgentReleaseCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AgentReleaseCommand {
    /// Add a signed agent binary for one architecture: its signature is checked with the
    /// fleet's key (<store-dir>/enrollment/ota-signing.pub) as every device will check
    /// it, then it is served to the rollouts naming its version (ConfigMap
    /// edge-agent-rollout, docs/deploy.md "Upgrade the agent").
    Add {
        #[command(flatten)]
        store: StoreDirArg,
        /// The version it was signed as (what the ConfigMap's data.version names).
        #[arg(long)]
        version: String,
        /// The Nodes' architecture name: arm64, arm or amd64.
        #[arg(long)]
        arch: String,
        /// The agent binary (e.g. target/aarch64-unknown-linux-musl/release/edge-agent).
        #[arg(long)]
        binary: PathBuf,
        /// Its signature: `openssl pkeyutl -sign -rawin` output (64 bytes) or its base64.
        #[arg(long)]
        signature: PathBuf,
        /// Replace another binary already released under this version and architecture
        /// (devices downloading it then fail their check and the rollout pauses).
        #[arg(long)]
        force: bool,
    },
    /// List the releases served: version, architecture, size, SHA-256.
    List(StoreDirArg),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentReleaseError {
    #[error(
        "the fleet has no agent-update key: create {0} first (docs/deploy.md, Upgrade the agent)"
    )]
    NoKey(PathBuf),
    #[error(transparent)]
    Key(#[from] EnrollmentError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Report(#[from] std::io::Error),
}

pub fn run_agent_release(args: AgentReleaseArgs) -> Result<(), AgentReleaseError> {
    agent_release(&args, &mut std::io::stdout().lock())
}

pub fn agent_release(
    args: &AgentReleaseArgs,
    out: &mut impl Write,
) -> Result<(), AgentReleaseError> {
    match &args.command {
        AgentReleaseCommand::Add {
            store,
            version,
            arch,
            binary,
            signature,
            force,
        } => {
            let layout = EnrollmentLayout::new(&store.store_dir);
            let key = FleetUpdateKey::load(&layout)?
                .ok_or_else(|| AgentReleaseError::NoKey(layout.root().join(OTA_PUBLIC_KEY)))?;
            let catalog = ReleaseCatalog::new(&store.store_dir);
            let release = catalog.add(&key, version, arch, binary, signature, *force)?;
            writeln!(
                out,
                "added agent {} for {}: {} bytes, sha256 {}\n{}\n\
                 roll it out: kubectl -n <gateway namespace> create configmap edge-agent-rollout \
                 --from-literal=version={} --from-literal=maxUnavailable=1",
                release.version,
                release.arch,
                release.size,
                release.sha256,
                release.path.display(),
                release.version
            )?;
        }
        AgentReleaseCommand::List(store) => {
            let catalog = ReleaseCatalog::new(&store.store_dir);
            let releases = catalog.list();
            if releases.is_empty() {
                writeln!(
                    out,
                    "no agent releases (add one with `edge-gateway agent-release add`)"
                )?;
            }
            for release in releases {
                match release {
                    Ok(r) => writeln!(
                        out,
                        "{}\t{}\t{} bytes\tsha256 {}",
                        r.version, r.arch, r.size, r.sha256
                    )?,
                    Err(e) => writeln!(out, "unreadable release: {e}")?,
                }
            }
        }
    }
    Ok(())
}
