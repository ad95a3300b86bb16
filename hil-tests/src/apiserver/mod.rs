//! Kubernetes API server emulator: HTTPS with bearer-token authentication, discovery,
//! OpenAPI, CRUD with kube-apiserver semantics, watch, patch, pods/log proxy, the metrics
//! API that metrics-server would serve, plus the
//! scheduler and node lifecycle controllers that act on device nodes.
//!
//! # Layout
//!
//! | module | what is there |
//! |---|---|
//! | [`apply`] | server-side apply with field ownership (`managedFields`) |
//! | [`certs`] | generated CAs, serving certificate, kubelet client certificate |
//! | [`kubeconfig`] | the kubeconfig written on start |
//! | [`resources`] | the served resource types (kinds, scope, verbs, subresources) |
//! | [`discovery`] | `/version`, `/api`, `/apis`, aggregated discovery |
//! | [`object_validation`] | labels, annotations, pod containers (422 Invalid) |
//! | [`openapi`] | `/openapi/v2` and `/openapi/v3` documents |
//! | [`store`] | storage, the cluster-wide resourceVersion, watch history |
//! | [`cluster`] | create/get/list/update/patch/binding semantics |
//! | [`csr_signing`] | signs approved CSRs with the cluster CA (kube-controller-manager's csrsigning) |
//! | [`defaults`] | defaulting and admission on create |
//! | [`conversion`] | served version ⇄ storage (events.k8s.io/v1 ⇄ core/v1 Event) |
//! | [`deletion`] | preconditions, graceful pod deletion, finalizers, namespace termination |
//! | [`selectors`] | label and field selectors |
//! | [`patch`] | merge, JSON and strategic merge patch (list merge keys, directives) |
//! | [`protobuf`] | protobuf request bodies of kubectl's typed-client writes |
//! | [`quantity`] | resource quantities (`100m`, `128Mi`) |
//! | [`watch`] | watch streams, bookmarks, 410 Gone |
//! | [`tables`] | server-side printing (`Table`) for kubectl |
//! | [`tokens`] | admin and ServiceAccount bearer tokens (TokenRequest) |
//! | [`validation`] | `fieldValidation=Strict` unknown-field detection |
//! | [`rbac`] | ClusterRoles, bindings: SubjectAccessReview answers, bootstrap policy |
//! | [`reviews`] | tokenreviews, subjectaccessreviews, selfsubjectaccessreviews |
//! | [`log_proxy`] | pods/log proxied to the node's kubelet endpoint with a client cert |
//! | [`metrics_api`] | `metrics.k8s.io/v1beta1` for `kubectl top`, scraped from the kubelets like metrics-server |
//! | [`metrics_points`] | the last two resource-metric points per series and the usage computed from them |
//! | [`stream_proxy`] | pods/exec, pods/attach, pods/portforward: the SPDY upgrade (and WebSocket, for Nodes declaring `ExtendWebSocketsToKubelet`) proxied to the kubelet |
//! | [`scheduler`] | binds pending pods like kube-scheduler |
//! | [`controller_ref`] | controller ownerReferences, pod activity/readiness, pods from templates |
//! | [`label_selector`] | `metav1.LabelSelector` matching and string form |
//! | [`scale`] | the `scale` subresource (`autoscaling/v1` `Scale`) |
//! | [`daemonset`] | one pod per eligible node (kube-controller-manager's daemon controller) |
//! | [`deployment`] | Deployments → ReplicaSets, rollouts, status and conditions |
//! | [`replicaset`] | ReplicaSets → pods, status |
//! | [`garbage_collector`] | deletes dependents of deleted owners; foreground and orphan |
//! | [`node_lifecycle`] | Ready=Unknown, unreachable taints, pods NotReady, NoExecute eviction |
//! | [`node_registration`] | `RegisteredNode` events, beta os/arch labels, the node TTL annotation |
//! | [`router`] | HTTP request parsing, authentication and dispatch |
//! | [`errors`] | `Status` errors with kube-apiserver's reasons and codes |
//! | [`clock`] | Kubernetes time formats |

pub mod apply;
pub mod certs;
pub mod clock;
pub mod cluster;
pub mod controller_ref;
pub mod conversion;
pub mod csr_signing;
pub mod daemonset;
pub mod defaults;
pub mod deletion;
pub mod deployment;
pub mod discovery;
pub mod errors;
pub mod garbage_collector;
pub mod kubeconfig;
pub mod label_selector;
pub mod log_proxy;
pub mod metrics_api;
pub mod metrics_points;
pub mod node_lifecycle;
pub mod node_registration;
pub mod object_validation;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod rbac;
pub mod replicaset;
pub mod resources;
pub mod reviews;
pub mod router;
pub mod scale;
pub mod scheduler;
pub mod selectors;
pub mod store;
pub mod stream_proxy;
pub mod tables;
pub mod tokens;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cluster::Cluster;

/// Errors starting or using the emulator.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Could not create the directory or write a file into it.
    #[error("preparing {path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Could not bind the listen address.
    #[error("binding {addr}: {source} (pick another --bind address or port 0)")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS material could not be generated.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// The kube client could not be built from the kubeconfig.
    #[error("building kube client: {0}")]
    Client(String),
}

/// Emulator configuration.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Listen address (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// Directory for the kubeconfig, CA and certificates.
    pub dir: PathBuf,
    /// Node lease grace period before a node is marked unreachable (default 50 s).
    pub node_lease_grace: Duration,
    /// Run the scheduler.
    pub scheduler: bool,
    /// Run the node lifecycle controller.
    pub node_lifecycle: bool,
    /// Interval of watch bookmarks (kube-apiserver: about a minute).
    pub bookmark_interval: Duration,
    /// How many change events the watch history keeps per resource (older
    /// resourceVersions get 410).
    pub watch_history: usize,
    /// How often the controllers (scheduler, node lifecycle, namespaces) run.
    pub controller_interval: Duration,
    /// Run the full ServiceAccount admission plugin as kube-apiserver does by default: a
    /// pod's ServiceAccount must exist and pods get the `kube-api-access-*` projected token
    /// volume. Off by default here (see README).
    pub service_account_token_volumes: bool,
}

impl ApiServerConfig {
    /// Defaults: `127.0.0.1:0`, 50 s lease grace, scheduler and node lifecycle on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.into(),
            node_lease_grace: Duration::from_secs(50),
            scheduler: true,
            node_lifecycle: true,
            bookmark_interval: Duration::from_secs(60),
            watch_history: 10_000,
            controller_interval: Duration::from_millis(200),
            service_account_token_volumes: false,
        }
    }
}

/// A running emulator; stops on drop or [`ApiServer::shutdown`].
#[derive(Debug)]
pub struct ApiServer {
    url: String,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    kubelet_client_ca: PathBuf,
    cluster: Arc<Cluster>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Generates TLS material, writes the kubeconfig and starts serving.
    pub async fn start(config: ApiServerConfig) -> Result<ApiServer, ApiServerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(&config.dir).map_err(|source| ApiServerError::Io {
            path: config.dir.clone(),
            source,
        })?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ApiServerError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ApiServerError::Bind {
                addr: config.bind,
                source,
            })?;
        let tls = certs::TlsMaterial::generate(&config.dir, Some(addr.ip()))?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let url = format!("https://{host}:{}", addr.port());
        let token = uuid::Uuid::new_v4().simple().to_string();
        let kubeconfig = config.dir.join("kubeconfig");
        kubeconfig::write(&kubeconfig, &url, &tls.ca_pem, &token).map_err(|source| {
            ApiServerError::Io {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        let cluster = Arc::new(Cluster::with_options(
            config.watch_history,
            Some(tls.ca_pem.clone()),
            config.service_account_token_volumes,
        ));
        let cancel = CancellationToken::new();
        let ctx = Arc::new(router::Context {
            cluster: cluster.clone(),
            tokens: tokens::Tokens::new(token),
            server_address: format!("{host}:{}", addr.port()),
            bookmark_interval: config.bookmark_interval,
            cancel: cancel.clone(),
            kubelet_client: log_proxy::KubeletClient::new(&tls.kubelet_client)?,
            metrics: Default::default(),
        });
        let server_config = tls.server_config()?;
        let tasks = vec![
            tokio::spawn(metrics_api::scrape_loop(ctx.clone())),
            tokio::spawn(serve(listener, server_config, ctx, cancel.clone())),
            tokio::spawn(run_controllers(
                cluster.clone(),
                config.clone(),
                csr_signing::ClusterSigner::new(tls.ca_pem.clone(), tls.ca_key_pem.clone()),
                cancel.clone(),
            )),
        ];
        tracing::info!(%url, kubeconfig = %kubeconfig.display(), "API server emulator serving");
        Ok(ApiServer {
            url,
            addr,
            kubeconfig,
            kubelet_client_ca: tls.kubelet_client_ca_path.clone(),
            cluster,
            cancel,
            tasks,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig file (works for kubectl and `kube::Config` unchanged).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// PEM CA of the client certificate presented to kubelets (pods/log proxy).
    pub fn kubelet_client_ca_path(&self) -> &Path {
        &self.kubelet_client_ca
    }

    /// The in-process cluster state (for tests that inspect or compact it).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A kube client for this server, built from the kubeconfig file.
    pub async fn client(&self) -> Result<kube::Client, ApiServerError> {
        kubeconfig::client(&self.kubeconfig)
            .await
            .map_err(|e| ApiServerError::Client(e.to_string()))
    }

    /// Stops serving and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<router::Context>,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(router::handle(ctx, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                }
            }
        });
    }
}

async fn run_controllers(
    cluster: Arc<Cluster>,
    config: ApiServerConfig,
    signer: csr_signing::ClusterSigner,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.controller_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lifecycle = node_lifecycle::NodeLifecycle::new(config.node_lease_grace);
    let mut registration = node_registration::NodeRegistration::new();
    // Like kube-controller-manager's --node-monitor-period (5 s for a 40-50 s grace): the
    // node lifecycle pass runs every grace/10, at most every 5 s, but not more often than
    // the controller tick.
    let monitor_period = (config.node_lease_grace / 10)
        .min(Duration::from_secs(5))
        .max(config.controller_interval);
    let mut last_monitor: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        cluster.finalize_namespaces();
        signer.run_once(&cluster);
        let now = tokio::time::Instant::now();
        if config.node_lifecycle && last_monitor.is_none_or(|t| now - t >= monitor_period) {
            last_monitor = Some(now);
            lifecycle.run_once(&cluster);
        }
        if config.node_lifecycle {
            registration.run_once(&cluster);
        }
        garbage_collector::run_once(&cluster);
        daemonset::run_once(&cluster);
        deployment::run_once(&cluster);
        replicaset::run_once(&cluster);
        if config.scheduler {
            scheduler::run_once(&cluster);
        }
    }
}
