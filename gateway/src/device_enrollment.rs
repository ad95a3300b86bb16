//! Zero-touch enrollment on the gateway, in the style of the kubelet's TLS bootstrap:
//! bootstrap tokens as Secrets, each device's CSR as a Kubernetes
//! CertificateSigningRequest with the gateway's own signer, approval by rule or by
//! `kubectl certificate approve`, signing with the fleet CA.
//!
//! # Layout
//!
//! | module | what is there |
//! |---|---|
//! | [`bootstrap_token`] | the token format, its Secret, and the check of a presented token (pure) |
//! | [`csr_check`] | what a device's PKCS#10 request may ask for: CN = its id, client auth only (pure) |
//! | [`approval_rule`] | `--enrollment-auto-approve <token-id>=<id pattern>` (pure) |
//! | [`csr_object`] | the `certificates.k8s.io/v1` object: name, labels, signer, state, approval (pure) |
//! | [`service`] | the task: requests from the MQTT link, token and duplicate checks, create, approve, sign, reply |

pub mod approval_rule;
pub mod bootstrap_token;
pub mod csr_check;
pub mod csr_object;
pub mod service;

use std::path::PathBuf;
use std::time::Duration;

pub use approval_rule::ApprovalRule;
pub use service::BootstrapPublish;

/// Default lifetime of certificates signed for enrolled devices.
pub const DEFAULT_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// `edge-gateway run` flags of enrollment.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct EnrollmentArgs {
    /// Serve zero-touch enrollment: bootstrap clients' CSRs become Kubernetes
    /// CertificateSigningRequests (signer edge-kube.io/device-client) signed with the
    /// fleet CA under --store-dir once approved.
    #[arg(long, env = "EDGE_GATEWAY_ENROLLMENT")]
    pub enrollment: bool,
    /// Namespace of the bootstrap token Secrets (bootstrap-token-<id>, type
    /// edge-kube.io/bootstrap-token).
    #[arg(
        long,
        env = "EDGE_GATEWAY_ENROLLMENT_NAMESPACE",
        default_value = "edge-kube-system"
    )]
    pub enrollment_namespace: String,
    /// Approve requests made with this bootstrap token id for device ids matching the
    /// pattern (`*` = any run of characters): <token-id>=<pattern>, e.g. abcdef=pi-*;
    /// `*` as token id means any valid token. Repeatable. Others wait for
    /// `kubectl certificate approve`.
    #[arg(
        long = "enrollment-auto-approve",
        env = "EDGE_GATEWAY_ENROLLMENT_AUTO_APPROVE",
        value_delimiter = ','
    )]
    pub enrollment_auto_approve: Vec<ApprovalRule>,
    /// Lifetime of the device certificates the gateway signs (2160h = 90 days, 60s).
    #[arg(long, env = "EDGE_GATEWAY_ENROLLMENT_CERTIFICATE_VALIDITY", default_value = "2160h", value_parser = crate::config::parse_duration)]
    pub enrollment_certificate_validity: Duration,
}

/// What the enrollment task runs with.
#[derive(Debug, Clone)]
pub struct EnrollmentSettings {
    pub namespace: String,
    pub auto_approve: Vec<ApprovalRule>,
    pub certificate_validity: Duration,
    pub store_dir: PathBuf,
}

impl EnrollmentArgs {
    /// The settings when enrollment is on.
    pub fn settings(&self, store_dir: &std::path::Path) -> Option<EnrollmentSettings> {
        self.enrollment.then(|| EnrollmentSettings {
            namespace: self.enrollment_namespace.clone(),
            auto_approve: self.enrollment_auto_approve.clone(),
            certificate_validity: self.enrollment_certificate_validity,
            store_dir: store_dir.to_owned(),
        })
    }
}
