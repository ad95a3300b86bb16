//! The autonomy flags of `edge-gateway run` and the validated [`AutonomySettings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{ConfigError, parse_duration};

/// Name of the MutatingWebhookConfiguration the kustomize base ships.
pub const DEFAULT_WEBHOOK_CONFIGURATION: &str = "edge-gateway-autonomy";

/// Offline autonomy flags (each also `EDGE_GATEWAY_<FLAG>`).
#[derive(Debug, Clone, Args)]
pub struct AutonomyArgs {
    /// How long a device may be offline before Kubernetes may move its pods, for devices
    /// whose Node has no edge-kube.io/autonomy annotation or label (e.g. 24h, 90m).
    /// Device pods get not-ready/unreachable NoExecute tolerations this long through the
    /// admission webhook.
    #[arg(long, env = "EDGE_GATEWAY_DEFAULT_AUTONOMY", default_value = "24h", value_parser = parse_duration)]
    pub default_autonomy: Duration,
    /// The API server's --default-not-ready-toleration-seconds and
    /// --default-unreachable-toleration-seconds: tolerations with exactly this value are
    /// the cluster's defaults and are replaced by the budget; others are the pod's own.
    #[arg(
        long,
        env = "EDGE_GATEWAY_CLUSTER_DEFAULT_TOLERATION_SECONDS",
        default_value_t = 300
    )]
    pub cluster_default_toleration_seconds: i64,
    /// Serve the autonomy admission webhook (HTTPS, POST /mutate-pods) on this address,
    /// e.g. 0.0.0.0:9443 in a cluster. Off when not given. It reads pods under review
    /// and answers with a patch of their tolerations; it changes nothing else.
    #[arg(long, env = "EDGE_GATEWAY_ADMISSION_WEBHOOK_LISTEN")]
    pub admission_webhook_listen: Option<SocketAddr>,
    /// Serving certificate of the webhook (PEM). Without it, a self-signed one is made in
    /// the store directory for --admission-webhook-dns-name and registered as the CA of
    /// --admission-webhook-configuration.
    #[arg(
        long,
        env = "EDGE_GATEWAY_ADMISSION_WEBHOOK_TLS_CERT",
        requires = "admission_webhook_tls_key"
    )]
    pub admission_webhook_tls_cert: Option<PathBuf>,
    /// Private key of --admission-webhook-tls-cert (PEM).
    #[arg(
        long,
        env = "EDGE_GATEWAY_ADMISSION_WEBHOOK_TLS_KEY",
        requires = "admission_webhook_tls_cert"
    )]
    pub admission_webhook_tls_key: Option<PathBuf>,
    /// DNS names of the self-signed webhook certificate (repeatable): the Service the
    /// API server calls. localhost and 127.0.0.1 are always included.
    #[arg(
        long = "admission-webhook-dns-name",
        env = "EDGE_GATEWAY_ADMISSION_WEBHOOK_DNS_NAMES",
        value_delimiter = ',',
        default_value = "edge-gateway.edge-system.svc"
    )]
    pub admission_webhook_dns_names: Vec<String>,
    /// Only answer API servers that present a client certificate signed by this CA
    /// (PEM; the API server's --admission-control-config-file gives it one).
    #[arg(long, env = "EDGE_GATEWAY_ADMISSION_WEBHOOK_CLIENT_CA")]
    pub admission_webhook_client_ca: Option<PathBuf>,
    /// The MutatingWebhookConfiguration whose caBundle the gateway fills with its
    /// webhook CA on start ("" = leave it alone, e.g. when cert-manager injects it).
    #[arg(
        long,
        env = "EDGE_GATEWAY_ADMISSION_WEBHOOK_CONFIGURATION",
        default_value = DEFAULT_WEBHOOK_CONFIGURATION
    )]
    pub admission_webhook_configuration: String,
}

/// The webhook's listener and certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub dns_names: Vec<String>,
    pub client_ca: Option<PathBuf>,
    /// `None`: do not register the CA anywhere.
    pub configuration: Option<String>,
}

/// Validated autonomy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutonomySettings {
    pub default_budget: Duration,
    pub cluster_default_toleration_seconds: i64,
    /// `None`: no webhook.
    pub webhook: Option<WebhookSettings>,
}

impl Default for AutonomySettings {
    fn default() -> Self {
        Self {
            default_budget: Duration::from_secs(24 * 3600),
            cluster_default_toleration_seconds: 300,
            webhook: None,
        }
    }
}

impl TryFrom<AutonomyArgs> for AutonomySettings {
    type Error = ConfigError;
    fn try_from(a: AutonomyArgs) -> Result<Self, ConfigError> {
        if a.cluster_default_toleration_seconds < 0 {
            return Err(ConfigError::Invalid(
                "--cluster-default-toleration-seconds must not be negative".to_owned(),
            ));
        }
        let webhook = a.admission_webhook_listen.map(|listen| WebhookSettings {
            listen,
            tls: a
                .admission_webhook_tls_cert
                .zip(a.admission_webhook_tls_key),
            dns_names: a.admission_webhook_dns_names,
            client_ca: a.admission_webhook_client_ca,
            configuration: Some(a.admission_webhook_configuration).filter(|n| !n.is_empty()),
        });
        Ok(Self {
            default_budget: a.default_autonomy,
            cluster_default_toleration_seconds: a.cluster_default_toleration_seconds,
            webhook,
        })
    }
}
