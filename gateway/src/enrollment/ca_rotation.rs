//! Fleet CA rotation without reflashing: `begin` moves the fleet CA to `previous-ca/`
//! and creates a new one that issues from then on, while both are trusted (the trust
//! bundle); devices move to the new CA at their next renewal (and receive the bundle in
//! its reply); `finish` drops the previous CA once no device holds a valid certificate
//! from it (or when forced).
//!
//! During the overlap the broker's server certificate stays under the previous CA,
//! which every device trusts whether or not it has received the bundle yet; after
//! `finish` it is issued by the new one, which every device trusts by then (a device
//! renewed under the new CA received the bundle with its certificate).
//!
//! Files (in `<store-dir>/enrollment/`, the fleet CA's format unchanged): `ca.pem` /
//! `ca.key` the issuing CA, `previous-ca/ca.pem` / `ca.key` the CA being replaced,
//! `trust-bundle.pem` both certificates (only `ca.pem`'s outside a rotation).

use std::path::PathBuf;
use std::time::Duration;

use edge_protocol::DeviceId;

use super::error::{EnrollmentError, Result};
use super::fleet_ca::FleetCa;
use super::issued::IssuedCertificates;
use super::layout::EnrollmentLayout;
use super::private_file::{create_dir, write_private, write_public};
use super::revocation::RevocationList;

/// Lifetime of the gateway's own client certificate reissued by [`finish`].
const GATEWAY_IDENTITY_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// Why a rotation step cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Enrollment(#[from] EnrollmentError),
    #[error("there is no fleet CA in {} to rotate", .0.display())]
    NoFleetCa(PathBuf),
    #[error(
        "a fleet CA rotation is already under way (previous CA in {}); finish it first \
         (`edge-gateway ca-rotation finish`)",
        .0.display()
    )]
    AlreadyUnderWay(PathBuf),
    #[error("no fleet CA rotation is under way (`edge-gateway ca-rotation begin` starts one)")]
    NotUnderWay,
    #[error(
        "{} device(s) still hold a valid certificate from the previous CA: {}; they move at \
         their next renewal (`edge-gateway ca-rotation status` follows them), or pass --force \
         to drop the previous CA anyway (those devices are then refused by the broker and must \
         enroll again with their bootstrap file)",
        .0.len(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    DevicesOnPreviousCa(Vec<DeviceId>),
}

/// Whether a rotation is under way: `previous-ca/` holds a CA.
pub fn under_way(layout: &EnrollmentLayout) -> bool {
    let previous = layout.previous_ca_layout();
    previous.ca_cert().is_file() && previous.ca_key().is_file()
}

/// The CA certificates devices and the gateway trust (PEM): the fleet CA, then the
/// previous one during a rotation.
pub fn trust_bundle_pem(layout: &EnrollmentLayout) -> Result<String> {
    let mut bundle = read(&layout.ca_cert())?;
    if under_way(layout) {
        let previous = read(&layout.previous_ca_layout().ca_cert())?;
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(&previous);
    }
    Ok(bundle)
}

/// The CA that issues the broker's server certificate: the previous one during a
/// rotation (every device trusts it), else the fleet CA.
pub fn server_certificate_ca(layout: &EnrollmentLayout) -> Result<FleetCa> {
    if under_way(layout) {
        FleetCa::load(&layout.previous_ca_layout())
    } else {
        FleetCa::load(layout)
    }
}

/// The previous CA during a rotation (its CRL must reach the broker too).
pub fn previous_ca(layout: &EnrollmentLayout) -> Result<Option<FleetCa>> {
    if under_way(layout) {
        FleetCa::load(&layout.previous_ca_layout()).map(Some)
    } else {
        Ok(None)
    }
}

/// Writes `trust-bundle.pem` from the CA files.
pub fn write_trust_bundle(layout: &EnrollmentLayout) -> Result<PathBuf> {
    let path = layout.trust_bundle();
    write_public(&path, trust_bundle_pem(layout)?.as_bytes())?;
    Ok(path)
}

/// Starts a rotation: the fleet CA becomes the previous CA, a new CA issues from now on.
pub fn begin(layout: &EnrollmentLayout) -> Result<RotationStatus, RotationError> {
    if under_way(layout) {
        return Err(RotationError::AlreadyUnderWay(
            layout.previous_ca_layout().root().to_owned(),
        ));
    }
    if !(layout.ca_cert().is_file() && layout.ca_key().is_file()) {
        return Err(RotationError::NoFleetCa(layout.root().to_owned()));
    }
    // Checked before anything moves: a broken CA is not rotated away silently.
    FleetCa::load(layout)?;
    let previous = layout.previous_ca_layout();
    create_dir(previous.root(), 0o700)?;
    // The key first: `under_way` needs both files, so an interruption between the two
    // moves leaves the fleet CA usable (its certificate still in place).
    for (from, to) in [
        (layout.ca_key(), previous.ca_key()),
        (layout.ca_cert(), previous.ca_cert()),
    ] {
        std::fs::rename(&from, &to).map_err(EnrollmentError::io("move aside", &from))?;
    }
    FleetCa::create(layout)?;
    write_trust_bundle(layout)?;
    Ok(status(layout)?)
}

/// Ends a rotation: refuses while devices hold a valid certificate of the previous CA
/// (unless `force`), then deletes the previous CA, reissues the gateway's own client
/// identity under the fleet CA and rewrites the trust bundle.
pub fn finish(layout: &EnrollmentLayout, force: bool) -> Result<RotationStatus, RotationError> {
    if !under_way(layout) {
        return Err(RotationError::NotUnderWay);
    }
    let before = status(layout)?;
    if !before.on_previous.is_empty() && !force {
        return Err(RotationError::DevicesOnPreviousCa(before.on_previous));
    }
    let ca = FleetCa::load(layout)?;
    let gateway = ca.issue_client(super::GATEWAY_IDENTITY, GATEWAY_IDENTITY_VALIDITY)?;
    create_dir(&layout.gateway_dir(), 0o700)?;
    write_private(&layout.gateway_key(), gateway.key_pem.as_bytes())?;
    write_public(&layout.gateway_cert(), gateway.cert_pem.as_bytes())?;
    let previous = layout.previous_ca_layout();
    std::fs::remove_dir_all(previous.root())
        .map_err(EnrollmentError::io("remove", previous.root()))?;
    write_trust_bundle(layout)?;
    Ok(RotationStatus {
        on_previous: before.on_previous,
        ..status(layout)?
    })
}

/// Where a rotation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStatus {
    pub under_way: bool,
    /// Subject of the issuing CA.
    pub fleet_ca: String,
    /// Subject of the previous CA during a rotation.
    pub previous_ca: Option<String>,
    /// Devices whose current certificate the fleet CA issued.
    pub on_fleet_ca: Vec<DeviceId>,
    /// Devices with a valid certificate from the previous CA (they block `finish`).
    pub on_previous: Vec<DeviceId>,
    /// Devices whose certificate has expired (they enroll again with their bootstrap
    /// file) or was issued by neither CA.
    pub expired_or_unknown: Vec<DeviceId>,
}

/// The devices (revoked ones left out) by the CA of their current certificate.
pub fn status(layout: &EnrollmentLayout) -> Result<RotationStatus> {
    let fleet = subject_der(&read(&layout.ca_cert())?, &layout.ca_cert())?;
    let previous = if under_way(layout) {
        let path = layout.previous_ca_layout().ca_cert();
        Some(subject_der(&read(&path)?, &path)?)
    } else {
        None
    };
    let revoked = RevocationList::load(layout.root().parent().unwrap_or(layout.root()))?;
    let now = jiff::Timestamp::now().as_second();
    let mut out = RotationStatus {
        under_way: previous.is_some(),
        fleet_ca: fleet.1.clone(),
        previous_ca: previous.as_ref().map(|p| p.1.clone()),
        on_fleet_ca: Vec::new(),
        on_previous: Vec::new(),
        expired_or_unknown: Vec::new(),
    };
    for (id, path) in IssuedCertificates::new(layout).devices()? {
        if revoked.contains(&id) {
            continue;
        }
        let (issuer, not_after) = issuer_of(&path)?;
        if not_after <= now {
            out.expired_or_unknown.push(id);
        } else if issuer == fleet.0 {
            out.on_fleet_ca.push(id);
        } else if previous.as_ref().is_some_and(|p| p.0 == issuer) {
            out.on_previous.push(id);
        } else {
            out.expired_or_unknown.push(id);
        }
    }
    Ok(out)
}

fn read(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(EnrollmentError::io("read", path))
}

fn bad(path: &std::path::Path, reason: impl ToString) -> EnrollmentError {
    EnrollmentError::BadPem {
        path: path.to_owned(),
        what: "certificate",
        reason: reason.to_string(),
    }
}

/// The subject of a CA certificate: raw DER (to compare with issuers) and as text.
fn subject_der(pem: &str, path: &std::path::Path) -> Result<(Vec<u8>, String)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(path, e))?;
    let cert = pem.parse_x509().map_err(|e| bad(path, e))?;
    Ok((cert.subject().as_raw().to_vec(), cert.subject().to_string()))
}

/// The issuer (raw DER) and end of validity (Unix seconds) of a certificate file.
fn issuer_of(path: &std::path::Path) -> Result<(Vec<u8>, i64)> {
    let pem = read(path)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(path, e))?;
    let cert = pem.parse_x509().map_err(|e| bad(path, e))?;
    Ok((
        cert.issuer().as_raw().to_vec(),
        cert.validity().not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests;
