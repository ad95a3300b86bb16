//! Errors of the enrollment module.

use std::path::PathBuf;

use edge_protocol::DeviceIdError;

/// Result alias of the enrollment module.
pub type Result<T, E = EnrollmentError> = std::result::Result<T, E>;

/// What can go wrong while enrolling, revoking or writing broker configuration.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate operation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{path} does not hold a usable {what}: {reason}")]
    BadPem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("invalid device id: {0}")]
    InvalidDeviceId(#[from] DeviceIdError),
    #[error(
        "device {id:?} is revoked; a revoked id cannot be enrolled again (enroll the board under a new id)"
    )]
    Revoked { id: String },
    #[error(
        "device {id:?} is already enrolled (certificate {}); pass --reissue to issue a new certificate \
         (the old one is then listed in the broker's CRL)",
        path.display()
    )]
    AlreadyEnrolled { id: String, path: PathBuf },
    #[error("invalid label {raw:?}: {reason} (expected key=value, e.g. site=lab)")]
    InvalidLabel { raw: String, reason: String },
    #[error("invalid broker URL {url:?}: {reason}")]
    InvalidBrokerUrl { url: String, reason: String },
    #[error("{path}: line {line}: {reason}")]
    BadRevocationList {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot encode the agent configuration: {0}")]
    AgentConfig(#[from] toml::ser::Error),
    #[error("invalid broker host name {host:?} for the server certificate: {reason}")]
    InvalidBrokerHost { host: String, reason: String },
}

impl EnrollmentError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| EnrollmentError::Io {
            action,
            path,
            source,
        }
    }
}

/// What can stop `edge-gateway enroll`, `revoke` or `broker-config`: an enrollment error,
/// a refused command line, or the report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Enrollment(#[from] EnrollmentError),
    #[error(
        "{} already holds a device.key; pick another --out-dir or move the old bundle away",
        dir.display()
    )]
    BundleExists { dir: PathBuf },
    #[error("give at least one --broker-host (the name devices use to reach the broker)")]
    NoBrokerHost,
    #[error(
        "--gateway-replica is supported for mosquitto only (the nats configuration pins one \
         gateway certificate)"
    )]
    ReplicasNotSupported,
    #[error("cannot resolve {}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] std::io::Error),
}
