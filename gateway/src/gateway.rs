//! Wiring: starts the broker, store, MQTT link, pod watch, Kubernetes writers, ticker,
//! kubelet API and metrics endpoint, and stops them all through one cancellation token.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::autonomy::AutonomyPolicy;
use crate::config::{BrokerConfig, GatewayConfig, KubeConfigSource};
use crate::fleet::{Fleet, FleetSettings};
use crate::kubelet_api::access::AccessControl;
use crate::kubelet_api::authn::Authenticator;
use crate::kubelet_api::authz::Authorizer;
use crate::metrics::Metrics;
use crate::node_object::NodeSettings;
use crate::sharding::ShardGate;
use crate::sharding::runner::ShardRunner;
use crate::store::Store;
use crate::{
    autonomy, embedded_broker, kube_writer, kubelet_api, local_endpoints, mqtt_link, pod_watch,
};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "cannot load the Kubernetes configuration: {0} (pass --kubeconfig, set KUBECONFIG, or run in a cluster)"
    )]
    KubeConfig(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Broker(#[from] embedded_broker::BrokerError),
    #[error(transparent)]
    Mqtt(#[from] mqtt_link::MqttError),
    #[error(transparent)]
    Tls(#[from] kubelet_api::tls::TlsError),
    #[error(transparent)]
    MetricsListen(#[from] local_endpoints::BeyondLoopback),
    #[error(transparent)]
    Webhook(#[from] autonomy::startup::WebhookStartError),
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the MQTT broker did not accept the gateway's connection within 15 s ({0})")]
    BrokerUnreachable(String),
    #[error(
        "the embedded MQTT broker failed ({0}); the gateway stops so that its supervisor (systemd, \
         Kubernetes) restarts it with a fresh broker, its store is intact. If this repeats, look for \
         the client that triggers it in the log, or move devices to Mosquitto (--broker-url)"
    )]
    BrokerFailed(String),
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the store directory {path}: {source}")]
    StoreDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// Ports the gateway serves on (what `--ready-file` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReadyPorts {
    pub mqtt_port: Option<u16>,
    pub kubelet_port: u16,
    pub metrics_port: u16,
    /// The autonomy admission webhook's port, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_port: Option<u16>,
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    pub ports: ReadyPorts,
    fleet: Arc<Fleet>,
    broker: Option<embedded_broker::EmbeddedBroker>,
    token: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Resolves when the embedded broker has failed, with what happened; pending forever
    /// with an external broker.
    pub async fn broker_failed(&self) -> String {
        match &self.broker {
            Some(b) => b.failed().await,
            None => std::future::pending().await,
        }
    }

    /// Stops every task and waits for them (the embedded broker thread lives on).
    pub async fn shutdown(self) {
        self.token.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Loads the Kubernetes client from a kubeconfig (file, context) or the cluster.
pub async fn kube_client(source: &KubeConfigSource) -> Result<kube::Client> {
    kube_client_as(source, None).await
}

/// [`kube_client`] sending `user_agent` with every request: the API server names the
/// field manager of the gateway's writes after it (each sharded replica its own).
pub async fn kube_client_as(
    source: &KubeConfigSource,
    user_agent: Option<&str>,
) -> Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: source.context.clone(),
        ..Default::default()
    };
    let config = match &source.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| GatewayError::KubeConfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| GatewayError::KubeConfig(e.to_string()))?
        }
        None if source.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| GatewayError::KubeConfig(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| GatewayError::KubeConfig(e.to_string()))?,
    };
    let mut config = config;
    if let Some(agent) = user_agent {
        let value = axum::http::HeaderValue::from_str(agent)
            .map_err(|e| GatewayError::KubeConfig(format!("user agent {agent:?}: {e}")))?;
        config.headers.push((axum::http::header::USER_AGENT, value));
    }
    kube::Client::try_from(config).map_err(|e| GatewayError::KubeConfig(e.to_string()))
}

/// Installs the ring crypto provider once per process (a second call is harmless).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Listen { what, addr, source })
}

/// Starts the gateway with `client`; returns once every endpoint is serving and the
/// MQTT connection is up.
pub async fn start(
    config: GatewayConfig,
    client: kube::Client,
    token: CancellationToken,
) -> Result<Gateway> {
    install_crypto_provider();
    std::fs::create_dir_all(&config.store_dir).map_err(|source| GatewayError::StoreDir {
        path: config.store_dir.display().to_string(),
        source,
    })?;
    let store = Store::open(&config.store_dir)?;
    let metrics = Arc::new(Metrics::new());

    let broker = match &config.broker {
        BrokerConfig::Embedded {
            listen,
            insecure_listen,
        } => {
            let broker = embedded_broker::start(*listen, *insecure_listen).await?;
            if broker.addr.ip().is_loopback() {
                info!(addr = %broker.addr, "embedded MQTT broker listening (loopback only)");
            } else {
                warn!(
                    addr = %broker.addr,
                    "--embedded-broker-insecure-listen: the embedded MQTT broker listens beyond loopback \
                     with NO authentication and NO topic ACL; anyone who reaches it can read every \
                     device's desired set (with Secret values) and command every device. Use \
                     Mosquitto (`edge-gateway broker-config mosquitto`, --broker-url) for real devices"
                );
            }
            if cfg!(panic = "abort") {
                warn!(
                    "this edge-gateway was built with panic=abort (the release profile): a panic in the \
                     embedded broker ends the process at once; build it with --profile release-gateway \
                     to stop cleanly instead (docs/gateway.md)"
                );
            }
            Some(broker)
        }
        BrokerConfig::External { .. } => None,
    };
    let mqtt_port = broker.as_ref().map(|b| b.addr.port());

    let kubelet_listener = bind("kubelet API", config.kubelet_listen).await?;
    let kubelet_port = kubelet_listener
        .local_addr()
        .map_err(|source| GatewayError::Listen {
            what: "kubelet API",
            addr: config.kubelet_listen,
            source,
        })?
        .port();
    local_endpoints::check_listen(config.metrics_listen, config.metrics_insecure_listen)?;
    if config.metrics_insecure_listen && !config.metrics_listen.ip().is_loopback() {
        warn!(
            listen = %config.metrics_listen,
            "/metrics and /readyz are served without authentication beyond loopback (--metrics-insecure-listen)"
        );
    }
    let metrics_listener = bind("metrics endpoint", config.metrics_listen).await?;
    let metrics_port = metrics_listener
        .local_addr()
        .map_err(|source| GatewayError::Listen {
            what: "metrics endpoint",
            addr: config.metrics_listen,
            source,
        })?
        .port();
    let (cert, key) = kubelet_api::tls::serving_files(
        config.kubelet_tls.as_ref(),
        &config.store_dir,
        &config.node_address,
    )?;
    let tls = kubelet_api::tls::server_config(
        &cert,
        &key,
        config.kubelet_client_ca.as_deref(),
        kubelet_api::tls::ClientCertificates::Optional,
    )?;
    if config.kubelet_client_ca.is_none()
        && !config.kubelet_authn.token_webhook
        && !config.kubelet_authn.anonymous
    {
        warn!(
            "neither --kubelet-client-ca nor --kubelet-token-auth is set: the kubelet API will refuse every request (401), kubectl logs included"
        );
    }

    let node_settings = NodeSettings {
        provider: config.provider.clone(),
        taint: config.taint,
        node_address: config.node_address.clone(),
        kubelet_port,
    };
    let (shard_gate, heard) = match &config.shard {
        Some(_) => {
            let (gate, heard) = ShardGate::sharded();
            (gate, Some(heard))
        }
        None => (ShardGate::unsharded(), None),
    };
    let (feedback_tx, mut feedback_rx) = mpsc::unbounded_channel();
    // Writes of one device stay in order on its shard; shards run concurrently.
    let ops = kube_writer::spawn_workers(
        32,
        shard_gate.clone(),
        client.clone(),
        metrics.clone(),
        node_settings.clone(),
        feedback_tx,
        token.clone(),
    );
    let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
    let (watch_tx, watch_rx) = mpsc::unbounded_channel();
    let side_sinks = (ops.clone(), outbox_tx.clone());
    let fleet = Arc::new(Fleet::new(
        FleetSettings {
            node: node_settings,
            device_timeout: config.device_timeout,
            lease_renew: config.node_lease_renew,
            node_status_interval: config.node_status_interval,
            allow_devices: config
                .allow_devices
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
            store_dir: config.store_dir.clone(),
            rejection_log_window: Duration::from_secs(60),
            log_cache_bytes: config.offline_log_cache_bytes,
        },
        store,
        metrics.clone(),
        ops,
        outbox_tx,
        watch_tx,
    ));

    fleet.set_shard_gate(shard_gate.clone());
    let mut tasks = Vec::new();
    // a sharded replica writes its own status annotation: each sees only its devices
    let status_annotation = |base: &str| match &config.shard {
        Some(shard) => format!("{base}.{}", shard.replica),
        None => base.to_owned(),
    };
    if let Some(namespace) = &config.agent_rollout_namespace {
        let (inbox, messages) =
            crate::agent_rollout::RolloutInbox::channel(crate::agent_rollout::MESSAGE_QUEUE);
        fleet.set_rollout_inbox(inbox);
        let runner = crate::agent_rollout::runner::RolloutRunner {
            settings: crate::agent_rollout::runner::RolloutSettings {
                namespace: namespace.clone(),
                store_dir: config.store_dir.clone(),
                status_annotation: status_annotation(
                    crate::agent_rollout::ROLLOUT_STATUS_ANNOTATION,
                ),
            },
            client: client.clone(),
            fleet: fleet.clone(),
            ops: side_sinks.0.clone(),
            outbox: side_sinks.1.clone(),
            messages,
        };
        tasks.push(tokio::spawn(runner.run(token.clone())));
    }
    if let Some(namespace) = &config.image_prepull_namespace {
        let (inbox, messages) =
            crate::image_prepull::PrepullInbox::channel(crate::image_prepull::MESSAGE_QUEUE);
        fleet.set_prepull_inbox(inbox);
        let runner = crate::image_prepull::runner::PrepullRunner {
            settings: crate::image_prepull::runner::PrepullSettings {
                namespace: namespace.clone(),
                status_annotation: status_annotation(crate::image_prepull::STATUS_ANNOTATION),
            },
            client: client.clone(),
            fleet: fleet.clone(),
            ops: side_sinks.0.clone(),
            outbox: side_sinks.1.clone(),
            messages,
        };
        tasks.push(tokio::spawn(runner.run(token.clone())));
    }
    {
        // the one owner of the fleet's state
        let fleet = fleet.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move { fleet.run(token).await }));
    }
    let client_id = match &config.shard {
        Some(shard) => shard.mqtt_client_id(&config.mqtt_client_id),
        None => config.mqtt_client_id.clone(),
    };
    let nodes = mqtt_link::failover_options(&config.broker, &client_id, mqtt_port)?;
    let first = mqtt_link::options(&config.broker, &client_id, mqtt_port)?;
    let (mqtt, eventloop) = mqtt_link::client(first);
    if let (Some(settings), Some(heard)) = (config.shard.clone(), heard) {
        let runner = ShardRunner {
            settings,
            client: client.clone(),
            gate: shard_gate,
            heard,
            fleet: fleet.clone(),
            mqtt: mqtt.clone(),
            metrics: metrics.clone(),
        };
        tasks.push(tokio::spawn(runner.run(token.clone())));
    }
    let (connected_tx, mut connected_rx) = watch::channel(false);
    let bootstrap_tx = match &config.enrollment {
        Some(settings) => {
            let (tx, rx) = mpsc::channel(1024);
            tasks.push(tokio::spawn(crate::device_enrollment::service::run(
                settings.clone(),
                client.clone(),
                mqtt.clone(),
                rx,
                token.clone(),
            )));
            Some(tx)
        }
        None => None,
    };
    tasks.push(tokio::spawn(mqtt_link::run_event_loop(
        eventloop,
        nodes,
        mqtt.clone(),
        fleet.clone(),
        connected_tx,
        bootstrap_tx,
        token.clone(),
    )));
    tasks.push(tokio::spawn(mqtt_link::run_outbox(
        outbox_rx,
        mqtt,
        mqtt_link::OutboxContext {
            store: fleet.store().clone(),
            health: fleet.health().clone(),
            metrics: metrics.clone(),
        },
        token.clone(),
    )));
    {
        // readiness follows the MQTT connection
        let health = fleet.health().clone();
        let mut rx = connected_rx.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                health.set_mqtt_connected(*rx.borrow_and_update());
                tokio::select! {
                    _ = token.cancelled() => break,
                    changed = rx.changed() => if changed.is_err() { break },
                }
            }
        }));
    }
    let connected =
        tokio::time::timeout(Duration::from_secs(15), connected_rx.wait_for(|c| *c)).await;
    if !matches!(connected, Ok(Ok(_))) {
        token.cancel();
        return Err(GatewayError::BrokerUnreachable(format!(
            "{:?}",
            config.broker
        )));
    }

    {
        let fleet = fleet.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    f = feedback_rx.recv() => match f { Some(f) => fleet.on_feedback(f), None => break },
                }
            }
        }));
    }
    if broker.is_some() {
        tasks.push(tokio::spawn(embedded_broker::capacity::watch(
            metrics.clone(),
            config.embedded_broker_device_limit,
            token.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::retire_trigger::run(
        client.clone(),
        config.store_dir.clone(),
        token.clone(),
    )));
    tasks.push(tokio::spawn(pod_watch::run(
        client.clone(),
        fleet.clone(),
        watch_rx,
        token.clone(),
    )));
    {
        let fleet = fleet.clone();
        let token = token.clone();
        let period =
            (config.node_lease_renew / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = interval.tick() => fleet.tick(),
                }
            }
        }));
    }
    tasks.push(tokio::spawn(kubelet_api::serve(
        kubelet_listener,
        tls,
        AccessControl {
            fleet: fleet.clone(),
            authenticator: Authenticator::new(client.clone(), config.kubelet_authn),
            authorizer: Authorizer::new(client.clone(), config.kubelet_authz),
        },
        metrics.clone(),
        (
            config.log_request_timeout,
            kubelet_api::StreamSettings {
                idle_timeout: config.streaming_connection_idle_timeout,
                ..Default::default()
            },
        ),
        token.clone(),
    )));
    tasks.push(tokio::spawn(local_endpoints::serve(
        metrics_listener,
        metrics.clone(),
        fleet.health().clone(),
        token.clone(),
    )));
    let device_nodes = autonomy::device_nodes::DeviceNodes::spawn(client.clone(), token.clone());
    tasks.push(tokio::spawn(autonomy::offline_budget::run(
        client.clone(),
        device_nodes.clone(),
        config.autonomy.default_budget,
        metrics.clone(),
        fleet.shard_gate(),
        token.clone(),
    )));
    let webhook_port = match &config.autonomy.webhook {
        Some(webhook) => {
            let started = autonomy::startup::start_webhook(
                webhook,
                &config.store_dir,
                AutonomyPolicy {
                    default_budget: config.autonomy.default_budget,
                    cluster_default_toleration_seconds: config
                        .autonomy
                        .cluster_default_toleration_seconds,
                    provider: config.provider.clone(),
                    taint: config.taint,
                },
                device_nodes,
                client,
                metrics.clone(),
                token.clone(),
            )
            .await?;
            tasks.extend(started.tasks);
            Some(started.port)
        }
        None => None,
    };

    let ports = ReadyPorts {
        mqtt_port,
        kubelet_port,
        metrics_port,
        webhook_port,
    };
    if let Some(path) = &config.ready_file {
        let json = serde_json::to_string(&ports).unwrap_or_default();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| GatewayError::ReadyFile {
                path: path.display().to_string(),
                source,
            })?;
    }
    info!(?ports, "edge-gateway serving");
    Ok(Gateway {
        ports,
        fleet,
        broker,
        token,
        tasks,
    })
}

/// Runs until `token` is cancelled (the binary cancels it on Ctrl-C / SIGTERM).
pub async fn run(config: GatewayConfig, token: CancellationToken) -> Result<()> {
    install_crypto_provider();
    let agent = config
        .shard
        .as_ref()
        .map(|s| format!("{}/{}", s.field_manager(), env!("CARGO_PKG_VERSION")));
    let client = kube_client_as(&config.kube, agent.as_deref()).await?;
    let gateway = start(config, client, token.clone()).await?;
    tokio::select! {
        _ = token.cancelled() => {
            info!("shutting down");
            gateway.shutdown().await;
            Ok(())
        }
        fault = gateway.broker_failed() => {
            error!(%fault, "the embedded MQTT broker failed; stopping the gateway");
            gateway.shutdown().await;
            Err(GatewayError::BrokerFailed(fault))
        }
    }
}
