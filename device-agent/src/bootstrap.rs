//! Zero-touch enrollment, in the style of the kubelet's TLS bootstrap: a board with only
//! the fleet's bootstrap file derives its device id from its hardware, generates its key,
//! sends a CSR with the bootstrap token, and once the gateway issues its certificate runs
//! under its own identity.
//!
//! | module | what is there |
//! |---|---|
//! | [`bootstrap_file`] | [`BootstrapFile`]: broker, CA, bootstrap client certificate, token, id template |
//! | [`hardware_id`] | the device id from the device tree serial, machine id or MAC through a template (pure rendering) |
//! | [`device_key`] | the identity directory: key generated on the device (0600), the CSR, the issued certificate checked against id and key |
//! | [`exchange`] | the MQTT exchange of a certificate request: request, pending, issued or refused |
//! | [`renewal`] | rotation: when (70-90 % of the lifetime, jitter, pure), and the renewal with a new key over the device's own identity |

pub mod bootstrap_file;
pub mod device_key;
pub mod exchange;
pub mod hardware_id;
pub mod renewal;

use std::path::PathBuf;

use edge_protocol::DeviceId;
use edge_protocol::enrollment::{CertificateRequest, RefusalReason};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use bootstrap_file::BootstrapFile;
pub use device_key::IdentityDir;
pub use exchange::ExchangeTimings;
pub use hardware_id::{HardwareSources, IdSource};

/// The identity directory `settings` use.
pub fn identity_dir(settings: &BootstrapSettings) -> Result<IdentityDir, BootstrapError> {
    let file = BootstrapFile::load(&settings.file)?;
    Ok(IdentityDir::new(
        settings.identity_dir.clone().unwrap_or(file.identity_dir),
    ))
}

/// Why the device has no identity.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    File(#[from] bootstrap_file::BootstrapFileError),
    #[error(transparent)]
    HardwareId(#[from] hardware_id::HardwareIdError),
    #[error(transparent)]
    Key(#[from] device_key::DeviceKeyError),
    #[error("cannot set up TLS for the bootstrap broker: {0}")]
    Tls(#[from] edge_protocol::broker_tls::BrokerTlsError),
    #[error("the gateway refused to enroll this device ({reason:?}): {message}")]
    Refused {
        reason: RefusalReason,
        message: String,
    },
    #[error("enrollment was interrupted")]
    Cancelled,
    #[error("no answer from the gateway within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("the bootstrap file names no broker to renew the certificate through")]
    NoBroker,
    #[error(transparent)]
    BrokerUrl(#[from] crate::config::ConfigError),
}

impl BootstrapError {
    /// The gateway refused the enrollment because the device id is retired: no retry can
    /// succeed, so the agent stops for good (as after a retirement).
    pub fn is_retired(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                reason: RefusalReason::Revoked,
                ..
            }
        )
    }
}

/// Where to find the bootstrap file, the hardware and the identity.
#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    pub file: PathBuf,
    /// Root of the hardware identifier paths (`/` on a device).
    pub hardware_root: PathBuf,
    /// Overrides the file's `identity_dir`.
    pub identity_dir: Option<PathBuf>,
    pub timings: ExchangeTimings,
}

/// The identity the agent runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub device_id: DeviceId,
    pub broker_urls: Vec<String>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The device's identity: the stored one while its certificate is valid, else a new one
/// through enrollment (which waits for approval as long as it takes).
pub async fn ensure_identity(
    settings: &BootstrapSettings,
    shutdown: &CancellationToken,
) -> Result<DeviceIdentity, BootstrapError> {
    let file = BootstrapFile::load(&settings.file)?;
    let identity = IdentityDir::new(
        settings
            .identity_dir
            .clone()
            .unwrap_or_else(|| file.identity_dir.clone()),
    );
    let of = |device_id: DeviceId, facts: &device_key::CertificateFacts| DeviceIdentity {
        device_id,
        broker_urls: file.broker_urls.clone(),
        ca_file: identity.ca(),
        cert_file: identity.cert(),
        key_file: identity.key(),
        not_before: facts.not_before,
        not_after: facts.not_after,
    };
    let mut expired = false;
    if let Some((id, facts)) = identity.current() {
        if facts.not_after > now_unix() {
            info!(device = %id, "using the enrolled identity in {}", identity.dir().display());
            return Ok(of(id, &facts));
        }
        info!(device = %id, "the device certificate expired while offline: enrolling again with the bootstrap token and a new key");
        expired = true;
    }
    let sources = HardwareSources::new(&settings.hardware_root);
    let (id, source) =
        hardware_id::render_template(&file.device_id_template, &sources.read(), sources.root())?;
    let key = if expired {
        identity.replace_key()?
    } else {
        identity.load_or_generate_key()?
    };
    let request = CertificateRequest {
        device_id: id.clone(),
        bootstrap_token: file.token.clone(),
        csr_pem: device_key::certificate_request(&id, &key)?,
        id_source: Some(source.as_str().to_owned()),
    };
    info!(device = %id, id_source = source.as_str(), "no identity yet: enrolling with the bootstrap token");
    let issued = exchange::exchange(
        exchange::bootstrap_options(&file, &id)?,
        exchange::ExchangeTopics::bootstrap(&id),
        &request,
        settings.timings,
        shutdown,
    )
    .await?;
    let facts = identity.store_issued(&id, &key, &issued.certificate_pem, &issued.ca_pem)?;
    info!(device = %id, csr = %issued.request_name, "enrolled: certificate stored in {}", identity.dir().display());
    Ok(of(id, &facts))
}

#[cfg(test)]
mod tests;
