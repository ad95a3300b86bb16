//! The kubelet API over HTTPS for every node of the gateway: `/healthz`, `/pods`,
//! `/metrics` (the gateway's own, as a kubelet serves its own),
//! `/containerLogs/{namespace}/{pod}/{container}` (streamed from the device over MQTT;
//! while the device is offline, the tail the gateway cached),
//! `/exec`, `/attach`, `/portForward` (SPDY/3.1 or WebSocket upgrades relayed to the
//! device as MQTT streams), and `/run` (a command run to its end, its output answered).
//! Every request, `/healthz` and unknown paths included, is authenticated and authorized
//! first, as the kubelet does in webhook mode.
//!
//! | module | what is there |
//! |---|---|
//! | [`tls`] | serving certificate, client-certificate verification |
//! | [`authn`] | who calls: client certificate, bearer token (TokenReview), anonymous |
//! | [`authz`] | what the request asks (`nodes/<subresource>`), SubjectAccessReview |
//! | [`access`] | the filter in front of every route, and which node a request is for |
//! | [`review_cache`] | bounded cache of review answers with per-entry expiry |
//! | [`log_query`] | the `containerLogs` query parameters, validated |
//! | `offline_logs` | `containerLogs` while the pod's device is offline: the offline log cache's tail |
//! | [`usage`] | `/stats/summary/{node}` and `/metrics/resource/{node}` from the devices' usage samples |
//! | [`streaming`] | `/exec`, `/attach`, `/portForward`: checks, then the SPDY upgrade |
//! | `spdy_io.rs` | the upgraded connection: the pure SPDY session read and written |
//! | `exec_relay.rs` | exec/attach relayed to the device, whatever the client speaks: flow control, resize, exit status, the ends |
//! | `spdy_exec.rs` | exec/attach on SPDY: the stream set, stdin/stdout/stderr, resize, the error stream |
//! | `ws_exec.rs` | exec/attach on WebSocket (`v5`/`v4.channel.k8s.io`): channel messages, the v5 stdin close |
//! | `spdy_port_forward.rs` | port-forward relayed to the device: one MQTT stream per forwarded connection |
//! | `run_command.rs` | `/run`: an exec relayed to its end, its output collected and answered |
//! | `ws_tunnel.rs` | a WebSocket as a byte stream: port-forward's `SPDY/3.1+portforward.k8s.io` tunnel |

pub mod access;
pub mod authn;
pub mod authz;
mod exec_relay;
pub mod log_query;
mod offline_logs;
pub mod review_cache;
mod run_command;
mod spdy_exec;
mod spdy_io;
mod spdy_port_forward;
pub mod streaming;
pub mod tls;
pub mod usage;
mod ws_exec;
mod ws_tunnel;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use edge_protocol::{DeviceId, LogChunk, LogErrorCode, LogRequest, RequestId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::fleet::{Fleet, LogTargetError};
use crate::metrics::Metrics;
use access::AccessControl;
pub use streaming::StreamSettings;

#[derive(Clone, Debug)]
struct ApiState {
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    log_timeout: Duration,
    streaming: StreamSettings,
    /// Cancelled when the gateway shuts down: streaming connections send GOAWAY.
    shutdown: CancellationToken,
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The gateway's own metrics, as the kubelet serves its own on `/metrics`
/// (authorized as `get nodes/metrics` on every node).
async fn metrics(State(state): State<ApiState>) -> Response {
    crate::local_endpoints::metrics_response(&state.metrics)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn pods(State(state): State<ApiState>) -> Response {
    let items: Vec<serde_json::Value> = state
        .fleet
        .pods()
        .await
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p.as_ref()).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), "v1".into());
                o.insert("kind".into(), "Pod".into());
            }
            v
        })
        .collect();
    let list =
        serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    (
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}

/// Ends the device-side stream when the HTTP body is dropped early.
struct LogStream {
    fleet: Arc<Fleet>,
    device: DeviceId,
    id: RequestId,
    rx: mpsc::Receiver<LogChunk>,
    first: Option<LogChunk>,
    remaining: Option<u64>,
    next_sequence: u64,
    done: bool,
}

impl Drop for LogStream {
    fn drop(&mut self) {
        if !self.done {
            self.fleet.cancel_log_request(&self.device, &self.id);
        }
    }
}

impl LogStream {
    /// The next piece of body, or `None` at the end.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let chunk = match self.first.take() {
                Some(c) => c,
                None => match self.rx.recv().await {
                    Some(c) => c,
                    None => {
                        // route closed: the device went offline or the request was dropped
                        self.done = true;
                        return None;
                    }
                },
            };
            if chunk.sequence != self.next_sequence {
                debug!(device = %self.device, expected = self.next_sequence, got = chunk.sequence, "log chunks lost in transit");
            }
            self.next_sequence = chunk.sequence + 1;
            if chunk.end_of_stream {
                self.done = true;
                self.fleet.logs().close(&self.id);
            }
            let mut data = chunk.data.0;
            if let Some(rem) = self.remaining.as_mut() {
                let take = usize::try_from(*rem).unwrap_or(usize::MAX).min(data.len());
                data.truncate(take);
                *rem -= take as u64;
                if *rem == 0 && !self.done {
                    self.done = true;
                    self.fleet.cancel_log_request(&self.device, &self.id);
                }
            }
            if !data.is_empty() {
                return Some(Bytes::from(data));
            }
        }
    }
}

fn log_error_response(chunk: &LogChunk, pod: &str, container: &str) -> Option<Response> {
    let err = chunk.error.as_ref()?;
    let status = match err.code {
        LogErrorCode::NotFound => StatusCode::NOT_FOUND,
        LogErrorCode::NoPreviousInstance | LogErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        LogErrorCode::Runtime => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Some(plain(
        status,
        format!("container {container:?} in pod {pod:?}: {}", err.message),
    ))
}

async fn container_logs(
    State(state): State<ApiState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let target = state.fleet.log_target(&namespace, &pod, &container).await;
    let params = match log_query::LogQuery::parse(query.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (device, uid) = match target {
        Ok(t) => t,
        Err(e @ LogTargetError::DeviceOffline(_)) => {
            let (fleet, offline) = (&state.fleet, e.to_string());
            return offline_logs::answer(fleet, &namespace, &pod, &container, &params, offline)
                .await;
        }
        Err(e) => return plain(StatusCode::NOT_FOUND, e.to_string()),
    };
    let request = LogRequest {
        pod_uid: uid,
        namespace: namespace.clone(),
        pod_name: pod.clone(),
        container: container.clone(),
        tail_lines: params.tail_lines,
        since_seconds: params.since_seconds,
        since_time: params.since_time,
        timestamps: params.timestamps,
        follow: params.follow,
        limit_bytes: params.limit_bytes,
        previous: params.previous,
    };
    let (id, rx) = state.fleet.start_log_request(&device, request);
    let mut stream = LogStream {
        fleet: state.fleet.clone(),
        device: device.clone(),
        id,
        rx,
        first: None,
        remaining: params.limit_bytes,
        next_sequence: 0,
        done: false,
    };
    match tokio::time::timeout(state.log_timeout, stream.rx.recv()).await {
        Ok(Some(first)) => {
            if let Some(resp) = log_error_response(&first, &pod, &container) {
                stream.done = true;
                state.fleet.logs().close(&stream.id);
                return resp;
            }
            stream.first = Some(first);
        }
        Ok(None) => {
            stream.done = true;
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("node {device} went offline while reading the log"),
            );
        }
        // a follow stream of a quiet container has nothing to send yet
        Err(_) if params.follow => {}
        Err(_) => {
            warn!(%device, "device did not answer a log request in time");
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "node {device} did not answer the log request within {:?}",
                    state.log_timeout
                ),
            );
        }
    }
    let body = futures::stream::unfold(stream, |mut s| async move {
        s.next_bytes()
            .await
            .map(|b| (Ok::<Bytes, std::io::Error>(b), s))
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "404 page not found")
}

/// The router (state included), every route behind the access filter.
fn router(access: AccessControl, metrics: Arc<Metrics>, settings: ApiSettings) -> Router {
    let fleet = access.fleet.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(self::metrics))
        .route("/pods", get(pods))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .merge(usage::routes())
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(streaming::exec).post(streaming::exec),
        )
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}",
            get(streaming::exec).post(streaming::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(streaming::attach).post(streaming::attach),
        )
        .route(
            "/attach/{namespace}/{pod}/{uid}/{container}",
            get(streaming::attach).post(streaming::attach),
        )
        .route("/run/{namespace}/{pod}/{container}", post(run_command::run))
        .route(
            "/run/{namespace}/{pod}/{uid}/{container}",
            post(run_command::run),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(streaming::port_forward).post(streaming::port_forward),
        )
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            get(streaming::port_forward).post(streaming::port_forward),
        )
        .fallback(not_found)
        .with_state(ApiState {
            fleet,
            metrics,
            log_timeout: settings.log_timeout,
            streaming: settings.streaming,
            shutdown: settings.shutdown,
        })
        .layer(axum::middleware::from_fn_with_state(access, access::filter))
}

/// Timings of the routes.
#[derive(Debug, Clone)]
struct ApiSettings {
    log_timeout: Duration,
    streaming: StreamSettings,
    shutdown: CancellationToken,
}

/// Serves the kubelet API on `listener` until cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    access: AccessControl,
    metrics: Arc<Metrics>,
    (log_timeout, streaming): (Duration, StreamSettings),
    token: CancellationToken,
) {
    let settings = ApiSettings {
        log_timeout,
        streaming,
        shutdown: token.clone(),
    };
    let app = router(access, metrics, settings);
    crate::https_server::serve(listener, tls, "kubelet API", token, move |conn| {
        let identity = conn
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(tls::subject_identity)
            .unwrap_or_default();
        app.clone().layer(Extension(identity))
    })
    .await;
}
