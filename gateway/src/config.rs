//! `edge-gateway run` flags (each also `EDGE_GATEWAY_<FLAG>`) and the validated
//! [`GatewayConfig`] the library runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::kubelet_api::authn::AuthnSettings;
use crate::kubelet_api::authz::AuthzSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 500ms, 10s, 2m, 1h")]
    Duration(String),
    #[error("--broker-url {0:?} must start with mqtt:// or mqtts:// and name a host and port")]
    BrokerUrl(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    EmbeddedBroker(#[from] crate::embedded_broker::BrokerError),
    #[error(transparent)]
    MetricsListen(#[from] crate::local_endpoints::BeyondLoopback),
}

/// Parses `500ms`, `10s`, `2m`, `1h` (a bare number means seconds).
pub fn parse_duration(raw: &str) -> Result<Duration, ConfigError> {
    let s = raw.trim();
    let err = || ConfigError::Duration(raw.to_owned());
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(err()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Flags of `edge-gateway run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Kubeconfig file for the cluster. Without it: $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account.
    #[arg(long, env = "EDGE_GATEWAY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, env = "EDGE_GATEWAY_CONTEXT")]
    pub context: Option<String>,
    #[command(flatten)]
    pub store: crate::store::StoreDirArg,
    /// Address of the embedded MQTT broker (rumqttd, plain TCP, no authentication, no
    /// topic ACL). Loopback only, unless --embedded-broker-insecure-listen: for devices on
    /// a network use Mosquitto (`edge-gateway broker-config mosquitto`, --broker-url).
    /// Port 0 picks a free port (reported in --ready-file). Ignored with --broker-url.
    #[arg(
        long,
        env = "EDGE_GATEWAY_MQTT_LISTEN",
        default_value = "127.0.0.1:1883"
    )]
    pub mqtt_listen: SocketAddr,
    /// INSECURE: let the embedded broker listen beyond loopback (--mqtt-listen 0.0.0.0:1883).
    /// Anyone who reaches the port can then read every device's desired set, including
    /// resolved Secret values, run containers on every device and register Nodes. Only
    /// for a lab network you trust; logged as a warning at startup.
    #[arg(long, env = "EDGE_GATEWAY_EMBEDDED_BROKER_INSECURE_LISTEN")]
    pub embedded_broker_insecure_listen: bool,
    /// Warn (and set edge_gateway_embedded_broker_over_limit) when more devices than this
    /// are online on the embedded broker: past it, a gateway restart may not get them all
    /// back (docs/benchmarks.md). 0 turns the warning off. Ignored with --broker-url.
    #[arg(
        long,
        env = "EDGE_GATEWAY_EMBEDDED_BROKER_DEVICE_LIMIT",
        default_value_t = crate::embedded_broker::capacity::MEASURED_DEVICE_LIMIT
    )]
    pub embedded_broker_device_limit: u64,
    /// Use an external broker instead of the embedded one: mqtt://host:port or
    /// mqtts://host:port (Mosquitto with the ACL from `broker-config mosquitto`, EMQX, ...).
    /// For a cluster, every node comma-separated (one scheme for all): the gateway
    /// starts with the first and moves to the next when a connection fails.
    #[arg(long, env = "EDGE_GATEWAY_BROKER_URL")]
    pub broker_url: Option<String>,
    /// PEM CA that signed the external broker's certificate (mqtts://).
    #[arg(long, env = "EDGE_GATEWAY_BROKER_CA")]
    pub broker_ca: Option<PathBuf>,
    /// PEM client certificate the gateway presents to the external broker.
    #[arg(long, env = "EDGE_GATEWAY_BROKER_CERT", requires = "broker_key")]
    pub broker_cert: Option<PathBuf>,
    /// PEM private key of --broker-cert.
    #[arg(long, env = "EDGE_GATEWAY_BROKER_KEY", requires = "broker_cert")]
    pub broker_key: Option<PathBuf>,
    /// MQTT client id of the gateway (with client certificates: the certificate's CN).
    #[arg(
        long,
        env = "EDGE_GATEWAY_MQTT_CLIENT_ID",
        default_value = "edge-gateway"
    )]
    pub mqtt_client_id: String,
    /// Address of the kubelet API (HTTPS) the API server calls for logs. Port 0 picks a
    /// free port (reported in --ready-file and put into every Node).
    #[arg(
        long,
        env = "EDGE_GATEWAY_KUBELET_LISTEN",
        default_value = "0.0.0.0:10250"
    )]
    pub kubelet_listen: SocketAddr,
    /// PEM serving certificate of the kubelet API. Without it a self-signed one is
    /// generated into <store-dir>/kubelet-tls/.
    #[arg(
        long,
        env = "EDGE_GATEWAY_KUBELET_TLS_CERT",
        requires = "kubelet_tls_key"
    )]
    pub kubelet_tls_cert: Option<PathBuf>,
    /// PEM private key of --kubelet-tls-cert.
    #[arg(
        long,
        env = "EDGE_GATEWAY_KUBELET_TLS_KEY",
        requires = "kubelet_tls_cert"
    )]
    pub kubelet_tls_key: Option<PathBuf>,
    /// PEM CA of the client certificates accepted on the kubelet API: the CA of the
    /// certificate kube-apiserver presents (--kubelet-client-certificate).
    #[arg(long, env = "EDGE_GATEWAY_KUBELET_CLIENT_CA")]
    pub kubelet_client_ca: Option<PathBuf>,
    /// Also accept bearer tokens on the kubelet API, checked with a TokenReview against
    /// the API server (the kubelet's --authentication-token-webhook). Every request, with
    /// a certificate or a token, is then authorized with a SubjectAccessReview on
    /// nodes/<subresource> (nodes/proxy for kubectl logs).
    #[arg(long, env = "EDGE_GATEWAY_KUBELET_TOKEN_AUTH")]
    pub kubelet_token_auth: bool,
    /// Let requests without credentials through authentication as system:anonymous
    /// (group system:unauthenticated), still subject to a SubjectAccessReview. Off by
    /// default (a hardened kubelet's --anonymous-auth=false): such requests get 401.
    #[arg(long, env = "EDGE_GATEWAY_KUBELET_ANONYMOUS_AUTH")]
    pub kubelet_anonymous_auth: bool,
    /// How long an allowed SubjectAccessReview answer is reused (the kubelet's
    /// authorization.webhook.cacheAuthorizedTTL).
    #[arg(long, env = "EDGE_GATEWAY_KUBELET_AUTHZ_CACHE_ALLOWED_TTL", default_value = "5m", value_parser = parse_duration)]
    pub kubelet_authz_cache_allowed_ttl: Duration,
    /// How long a denied SubjectAccessReview answer is reused (the kubelet's
    /// authorization.webhook.cacheUnauthorizedTTL).
    #[arg(long, env = "EDGE_GATEWAY_KUBELET_AUTHZ_CACHE_DENIED_TTL", default_value = "30s", value_parser = parse_duration)]
    pub kubelet_authz_cache_denied_ttl: Duration,
    /// How long a TokenReview answer is reused (the kubelet's
    /// authentication.webhook.cacheTTL).
    #[arg(long, env = "EDGE_GATEWAY_KUBELET_TOKEN_CACHE_TTL", default_value = "2m", value_parser = parse_duration)]
    pub kubelet_token_cache_ttl: Duration,
    /// InternalIP put into every Node's status.addresses: where the API server reaches
    /// this gateway's kubelet API (the gateway pod's or host's IP).
    #[arg(long, env = "EDGE_GATEWAY_NODE_ADDRESS", default_value = "127.0.0.1")]
    pub node_address: String,
    /// Provider name in the node taint virtual-kubelet.io/provider=<provider>:NoSchedule.
    #[arg(long, env = "EDGE_GATEWAY_PROVIDER", default_value = "edge")]
    pub provider: String,
    /// Do not taint device nodes (any pod may then be scheduled onto devices).
    #[arg(long, env = "EDGE_GATEWAY_NO_TAINT")]
    pub no_taint: bool,
    /// How often each online device's Lease in kube-node-lease is renewed.
    #[arg(long, env = "EDGE_GATEWAY_NODE_LEASE_RENEW", default_value = "10s", value_parser = parse_duration)]
    pub node_lease_renew: Duration,
    /// Heartbeat age after which a device counts as offline (its Lease is then no
    /// longer renewed, so the node lifecycle controller marks the Node unreachable).
    #[arg(long, env = "EDGE_GATEWAY_DEVICE_TIMEOUT", default_value = "40s", value_parser = parse_duration)]
    pub device_timeout: Duration,
    /// How often an online device's Node status is patched even when nothing changed.
    #[arg(long, env = "EDGE_GATEWAY_NODE_STATUS_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub node_status_interval: Duration,
    /// How long the kubelet API waits for a device to answer a log request.
    #[arg(long, env = "EDGE_GATEWAY_LOG_REQUEST_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub log_request_timeout: Duration,
    /// An exec, attach or port-forward connection with no data either way for this long
    /// is closed (the kubelet's --streaming-connection-idle-timeout).
    #[arg(long, env = "EDGE_GATEWAY_STREAMING_CONNECTION_IDLE_TIMEOUT", default_value = "4h", value_parser = parse_duration)]
    pub streaming_connection_idle_timeout: Duration,
    /// Only accept devices with these ids (repeatable). Default: every device with a
    /// valid id that is not revoked (with an external broker, enrollment certificates
    /// decide who can connect at all).
    #[arg(
        long = "allow-device",
        env = "EDGE_GATEWAY_ALLOW_DEVICE",
        value_delimiter = ','
    )]
    pub allow_devices: Vec<String>,
    /// Address of the plain-HTTP, unauthenticated Prometheus /metrics and readiness /readyz
    /// endpoints, for a scraper or probe on this host (`edge-gateway check-ready` asks it).
    /// Loopback only, unless --metrics-insecure-listen. From elsewhere, scrape /metrics over
    /// the kubelet API (HTTPS on --kubelet-listen, authorized as `get nodes/metrics`).
    /// Port 0 picks a free port (reported in --ready-file).
    #[arg(
        long,
        env = "EDGE_GATEWAY_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// INSECURE: let --metrics-listen be beyond loopback. Anyone who reaches the port reads
    /// the fleet's metrics (device ids, pod counts) without credentials.
    #[arg(long, env = "EDGE_GATEWAY_METRICS_INSECURE_LISTEN")]
    pub metrics_insecure_listen: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. info or edge_gateway=debug,info.
    #[arg(long, env = "EDGE_GATEWAY_LOG_FILTER", default_value = "info")]
    pub log_filter: String,
    /// Once serving, write {"mqtt_port":N|null,"kubelet_port":N,"metrics_port":N} here.
    #[arg(long, env = "EDGE_GATEWAY_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    /// Bytes of output kept per container for `kubectl logs` while its device is offline
    /// (from the devices' up/logtail reports, kept in the store); 0 = off. Pods annotated
    /// edge-kube.io/log-cache: "off" are never cached.
    #[arg(long, env = "EDGE_GATEWAY_OFFLINE_LOG_CACHE_BYTES", default_value_t = crate::log_cache::DEFAULT_CACHE_BYTES)]
    pub offline_log_cache_bytes: u64,
    #[command(flatten)]
    pub autonomy: crate::autonomy::AutonomyArgs,
    #[command(flatten)]
    pub shard: crate::sharding::ShardArgs,
    #[command(flatten)]
    pub enrollment: crate::device_enrollment::EnrollmentArgs,
    /// Roll out agent versions: watch the ConfigMap edge-agent-rollout in this namespace
    /// (in a cluster: the gateway's own) and update the selected devices' agents in waves
    /// with the signed releases of `edge-gateway agent-release add` (docs/deploy.md,
    /// Upgrade the agent). Off without it.
    #[arg(long, env = "EDGE_GATEWAY_AGENT_ROLLOUT_NAMESPACE")]
    pub agent_rollout_namespace: Option<String>,
    /// Pre-pull images onto devices: watch the ConfigMaps labelled
    /// edge-kube.io/image-prepull in this namespace (in a cluster: the gateway's own; their
    /// imagePullSecrets are read from it too) and have the selected devices pull the
    /// listed images ahead, with per-Node progress (docs/deploy.md, Pre-pull images). Off
    /// without it.
    #[arg(long, env = "EDGE_GATEWAY_IMAGE_PREPULL_NAMESPACE")]
    pub image_prepull_namespace: Option<String>,
}

/// Where the gateway's MQTT client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerConfig {
    /// Start rumqttd in-process on this address (loopback unless `insecure_listen`).
    Embedded {
        listen: SocketAddr,
        insecure_listen: bool,
    },
    /// An external broker.
    External {
        host: String,
        port: u16,
        /// More nodes of the same broker cluster (`host`, `port`), tried in turn after
        /// `host:port` when a connection fails.
        failover: Vec<(String, u16)>,
        tls: bool,
        ca: Option<PathBuf>,
        client_cert: Option<(PathBuf, PathBuf)>,
    },
}

/// How to reach Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeConfigSource {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Everything the gateway runs with.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub kube: KubeConfigSource,
    pub store_dir: PathBuf,
    pub broker: BrokerConfig,
    /// Devices online above which the embedded broker warns (0: never).
    pub embedded_broker_device_limit: u64,
    pub mqtt_client_id: String,
    pub kubelet_listen: SocketAddr,
    pub kubelet_tls: Option<(PathBuf, PathBuf)>,
    pub kubelet_client_ca: Option<PathBuf>,
    pub kubelet_authn: AuthnSettings,
    pub kubelet_authz: AuthzSettings,
    pub node_address: String,
    pub provider: String,
    pub taint: bool,
    pub node_lease_renew: Duration,
    pub device_timeout: Duration,
    pub node_status_interval: Duration,
    pub log_request_timeout: Duration,
    pub streaming_connection_idle_timeout: Duration,
    pub allow_devices: Vec<String>,
    pub metrics_listen: SocketAddr,
    /// `--metrics-insecure-listen`: the user accepts a non-loopback `metrics_listen`.
    pub metrics_insecure_listen: bool,
    pub ready_file: Option<PathBuf>,
    /// `--offline-log-cache-bytes`: per container, 0 = off.
    pub offline_log_cache_bytes: u64,
    pub autonomy: crate::autonomy::AutonomySettings,
    /// `--replica-id`: one of several replicas sharing the fleet; `None`: the only one.
    pub shard: Option<crate::sharding::ShardSettings>,
    /// Zero-touch enrollment (`--enrollment`), when on.
    pub enrollment: Option<crate::device_enrollment::EnrollmentSettings>,
    /// Namespace of the agent rollout ConfigMap (`--agent-rollout-namespace`), when on.
    pub agent_rollout_namespace: Option<String>,
    /// Namespace of the image pre-pull ConfigMaps (`--image-prepull-namespace`), when on.
    pub image_prepull_namespace: Option<String>,
}

impl GatewayConfig {
    /// Defaults for a gateway on loopback with free ports and an embedded broker.
    pub fn local(store_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            kube: KubeConfigSource::default(),
            store_dir: store_dir.into(),
            broker: BrokerConfig::Embedded {
                listen: any,
                insecure_listen: false,
            },
            embedded_broker_device_limit: crate::embedded_broker::capacity::MEASURED_DEVICE_LIMIT,
            mqtt_client_id: "edge-gateway".to_owned(),
            kubelet_listen: any,
            kubelet_tls: None,
            kubelet_client_ca: None,
            kubelet_authn: AuthnSettings::default(),
            kubelet_authz: AuthzSettings::default(),
            node_address: "127.0.0.1".to_owned(),
            provider: "edge".to_owned(),
            taint: true,
            node_lease_renew: Duration::from_secs(10),
            device_timeout: Duration::from_secs(40),
            node_status_interval: Duration::from_secs(60),
            log_request_timeout: Duration::from_secs(15),
            streaming_connection_idle_timeout: Duration::from_secs(4 * 60 * 60),
            allow_devices: Vec::new(),
            metrics_listen: any,
            metrics_insecure_listen: false,
            ready_file: None,
            offline_log_cache_bytes: crate::log_cache::DEFAULT_CACHE_BYTES,
            autonomy: Default::default(),
            shard: None,
            enrollment: None,
            agent_rollout_namespace: None,
            image_prepull_namespace: None,
        }
    }
}

/// Parses `mqtt://host:port` / `mqtts://host:port`.
pub fn parse_broker_url(url: &str) -> Result<(String, u16, bool), ConfigError> {
    let err = || ConfigError::BrokerUrl(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(err());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| err())?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(err());
    }
    Ok((host.to_owned(), port, tls))
}

impl TryFrom<RunArgs> for GatewayConfig {
    type Error = ConfigError;
    fn try_from(a: RunArgs) -> Result<Self, ConfigError> {
        let broker = match &a.broker_url {
            None => {
                crate::embedded_broker::check_listen(
                    a.mqtt_listen,
                    a.embedded_broker_insecure_listen,
                )?;
                BrokerConfig::Embedded {
                    listen: a.mqtt_listen,
                    insecure_listen: a.embedded_broker_insecure_listen,
                }
            }
            Some(urls) => {
                let mut nodes = Vec::new();
                for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                    nodes.push(parse_broker_url(url)?);
                }
                let mut nodes = nodes.into_iter();
                let (host, port, tls) = nodes
                    .next()
                    .ok_or_else(|| ConfigError::BrokerUrl(urls.clone()))?;
                let failover = nodes
                    .map(|(host, port, node_tls)| {
                        if node_tls == tls {
                            Ok((host, port))
                        } else {
                            Err(ConfigError::Invalid(format!(
                                "--broker-url {urls:?}: every node of a cluster uses the same scheme"
                            )))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if !tls && (a.broker_ca.is_some() || a.broker_cert.is_some()) {
                    return Err(ConfigError::Invalid(
                        "--broker-ca/--broker-cert need an mqtts:// --broker-url".to_owned(),
                    ));
                }
                BrokerConfig::External {
                    host,
                    port,
                    failover,
                    tls,
                    ca: a.broker_ca.clone(),
                    client_cert: a.broker_cert.clone().zip(a.broker_key.clone()),
                }
            }
        };
        if a.node_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "--node-address {:?} must be an IP address (the API server connects to it)",
                a.node_address
            )));
        }
        if a.device_timeout.is_zero() || a.node_lease_renew.is_zero() {
            return Err(ConfigError::Invalid(
                "--device-timeout and --node-lease-renew must be greater than zero".to_owned(),
            ));
        }
        crate::local_endpoints::check_listen(a.metrics_listen, a.metrics_insecure_listen)?;
        let shard: Option<crate::sharding::ShardSettings> = a.shard.clone().try_into()?;
        if shard.is_some() && matches!(broker, BrokerConfig::Embedded { .. }) {
            return Err(ConfigError::Invalid(
                "--replica-id needs --broker-url: replicas share the fleet through one external broker \
                 (each embedded broker only reaches the devices connected to it)"
                    .to_owned(),
            ));
        }
        for id in &a.allow_devices {
            edge_protocol::DeviceId::new(id.clone())
                .map_err(|e| ConfigError::Invalid(format!("--allow-device {id:?}: {e}")))?;
        }
        let enrollment = a.enrollment.settings(&a.store.store_dir);
        if shard.is_some() && enrollment.is_some() {
            // every replica hears every bootstrap request, and no replica owns a device
            // before it has enrolled: each would create its own CSR for the one board
            return Err(ConfigError::Invalid(
                "--enrollment cannot be combined with --replica-id yet: run zero-touch enrollment \
                 on one unsharded gateway beside the replicas (docs/gateway.md, \"Sharded replicas\")"
                    .to_owned(),
            ));
        }
        Ok(Self {
            enrollment,
            agent_rollout_namespace: a.agent_rollout_namespace,
            image_prepull_namespace: a.image_prepull_namespace,
            kube: KubeConfigSource {
                kubeconfig: a.kubeconfig,
                context: a.context,
            },
            store_dir: a.store.store_dir,
            broker,
            embedded_broker_device_limit: a.embedded_broker_device_limit,
            mqtt_client_id: a.mqtt_client_id,
            kubelet_listen: a.kubelet_listen,
            kubelet_tls: a.kubelet_tls_cert.zip(a.kubelet_tls_key),
            kubelet_client_ca: a.kubelet_client_ca,
            kubelet_authn: AuthnSettings {
                token_webhook: a.kubelet_token_auth,
                anonymous: a.kubelet_anonymous_auth,
                token_cache_ttl: a.kubelet_token_cache_ttl,
            },
            kubelet_authz: AuthzSettings {
                allowed_ttl: a.kubelet_authz_cache_allowed_ttl,
                denied_ttl: a.kubelet_authz_cache_denied_ttl,
            },
            node_address: a.node_address,
            provider: a.provider,
            taint: !a.no_taint,
            node_lease_renew: a.node_lease_renew,
            device_timeout: a.device_timeout,
            node_status_interval: a.node_status_interval,
            log_request_timeout: a.log_request_timeout,
            streaming_connection_idle_timeout: a.streaming_connection_idle_timeout,
            allow_devices: a.allow_devices,
            metrics_listen: a.metrics_listen,
            metrics_insecure_listen: a.metrics_insecure_listen,
            ready_file: a.ready_file,
            offline_log_cache_bytes: a.offline_log_cache_bytes,
            autonomy: a.autonomy.try_into()?,
            shard,
        })
    }
}

#[cfg(test)]
mod tests;
