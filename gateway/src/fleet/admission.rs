//! Which devices may join: `--allow-device` and the revocation list.

use edge_protocol::DeviceId;
use tracing::warn;

use super::FleetSettings;
use super::input::Revocation;

/// Why a device may not join the fleet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("device is not in --allow-device")]
    NotAllowed,
    #[error("device is revoked")]
    Revoked,
    #[error("revocation list unreadable: {0}")]
    RevocationListUnreadable(String),
}

/// Whether `device` may join (say hello, be asked to introduce itself).
pub fn admitted(
    settings: &FleetSettings,
    device: &DeviceId,
    revocation: &Revocation,
) -> Result<(), AdmissionError> {
    if !settings.allow_devices.is_empty() && !settings.allow_devices.contains(device.as_str()) {
        return Err(AdmissionError::NotAllowed);
    }
    match revocation {
        Revocation::Revoked => Err(AdmissionError::Revoked),
        Revocation::NotRevoked => Ok(()),
        Revocation::Unreadable(e) => {
            warn!(error = %e, "cannot read the revocation list; refusing hellos until it is fixed");
            Err(AdmissionError::RevocationListUnreadable(e.clone()))
        }
    }
}
