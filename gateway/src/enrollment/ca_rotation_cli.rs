//! `edge-gateway ca-rotation begin|status|finish`: the operator's commands of a fleet
//! CA rotation ([`super::ca_rotation`]), with the next steps printed after each.

use std::io::Write;

use clap::{Args, Subcommand};

use super::ca_rotation::{self, RotationError, RotationStatus};
use super::layout::EnrollmentLayout;
use crate::store::StoreDirArg;

/// `edge-gateway ca-rotation`: replace the fleet CA without reflashing devices.
#[derive(Debug, Clone, Args)]
pub struct CaRotationArgs {
    #[command(subcommand)]
    pub step: CaRotationStep,
}

/// One step of a fleet CA rotation.
#[derive(Debug, Clone, Subcommand)]
pub enum CaRotationStep {
    /// Create a new fleet CA that signs every certificate from now on (enrollments and
    /// renewals), keep the current one as the previous CA, trusted until `finish`
    /// (`trust-bundle.pem` holds both). Devices move to the new CA at their next
    /// renewal and receive the bundle with it. Then regenerate the broker configuration
    /// (`broker-config mosquitto`) and reload Mosquitto (SIGHUP), so that it accepts
    /// certificates of both CAs.
    Begin(StoreDirArg),
    /// List the enrolled devices by the CA of their current certificate.
    Status(StoreDirArg),
    /// Drop the previous CA once no device holds a valid certificate from it (refused
    /// with the list of those devices otherwise), and reissue the gateway's own broker
    /// client identity under the new CA. Then regenerate the broker configuration (the
    /// server certificate is issued by the new CA from now on), reload Mosquitto and restart
    /// the gateway.
    Finish {
        #[command(flatten)]
        store: StoreDirArg,
        /// Drop the previous CA even though devices still hold certificates from it
        /// (they are refused by the broker and enroll again with their bootstrap file).
        #[arg(long)]
        force: bool,
    },
}

/// Runs the step, reporting to stdout.
pub fn run_ca_rotation(args: CaRotationArgs) -> Result<(), CaRotationCliError> {
    ca_rotation(&args, &mut std::io::stdout().lock())
}

/// What stops a rotation command.
#[derive(Debug, thiserror::Error)]
pub enum CaRotationCliError {
    #[error(transparent)]
    Rotation(#[from] RotationError),
    #[error(transparent)]
    Enrollment(#[from] super::EnrollmentError),
    #[error(transparent)]
    Report(#[from] std::io::Error),
}

/// Runs the step, reporting to `out`.
pub fn ca_rotation(args: &CaRotationArgs, out: &mut impl Write) -> Result<(), CaRotationCliError> {
    match &args.step {
        CaRotationStep::Begin(store) => {
            let layout = EnrollmentLayout::new(&store.store_dir);
            let status = ca_rotation::begin(&layout)?;
            writeln!(
                out,
                "rotation begun: the new fleet CA {} issues every certificate from now on; \
                 the previous CA {} stays trusted until `ca-rotation finish`\n\
                 trust bundle (both CAs): {}\n\
                 next: regenerate the broker configuration and reload Mosquitto (SIGHUP), e.g.\n  \
                 edge-gateway broker-config mosquitto --store-dir {} ... && systemctl reload mosquitto\n\
                 (its server certificate stays under the previous CA until finish), and run the gateway\n  \
                 with --broker-ca {} (devices move at their next renewal)",
                status.fleet_ca,
                status.previous_ca.as_deref().unwrap_or("?"),
                layout.trust_bundle().display(),
                store.store_dir.display(),
                layout.trust_bundle().display(),
            )?;
            report(&status, out)?;
        }
        CaRotationStep::Status(store) => {
            let layout = EnrollmentLayout::new(&store.store_dir);
            report(&ca_rotation::status(&layout)?, out)?;
        }
        CaRotationStep::Finish { store, force } => {
            let layout = EnrollmentLayout::new(&store.store_dir);
            let status = ca_rotation::finish(&layout, *force)?;
            if !status.on_previous.is_empty() {
                writeln!(
                    out,
                    "forced: {} device(s) still held a certificate from the dropped CA and must enroll again: {}",
                    status.on_previous.len(),
                    join(&status.on_previous)
                )?;
            }
            writeln!(
                out,
                "rotation finished: only {} is trusted now; the gateway's client identity was reissued under it\n\
                 next: regenerate the broker configuration (server certificate and CRL under the new CA),\n  \
                 reload Mosquitto (SIGHUP) and restart the gateway (it reads its identity at start):\n  \
                 edge-gateway broker-config mosquitto --store-dir {} ... && systemctl reload mosquitto && systemctl restart edge-gateway",
                status.fleet_ca,
                store.store_dir.display(),
            )?;
        }
    }
    Ok(())
}

fn join(ids: &[edge_protocol::DeviceId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(status: &RotationStatus, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "fleet CA: {}", status.fleet_ca)?;
    match &status.previous_ca {
        Some(previous) => writeln!(out, "previous CA (rotation under way): {previous}")?,
        None => writeln!(out, "no rotation under way")?,
    }
    writeln!(
        out,
        "devices on the fleet CA: {} [{}]",
        status.on_fleet_ca.len(),
        join(&status.on_fleet_ca)
    )?;
    if status.under_way {
        writeln!(
            out,
            "devices still on the previous CA: {} [{}]",
            status.on_previous.len(),
            join(&status.on_previous)
        )?;
    }
    writeln!(
        out,
        "devices with an expired certificate or one of another CA: {} [{}]",
        status.expired_or_unknown.len(),
        join(&status.expired_or_unknown)
    )
}
