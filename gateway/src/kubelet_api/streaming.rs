//! The kubelet's streaming routes: `/exec`, `/attach` (`/{namespace}/{pod}[/{uid}]/{container}`)
//! and `/portForward/{namespace}/{pod}[/{uid}]`, GET and POST. Before upgrading, the
//! request is checked ([`crate::device_streams::check_target`]: the pod is the gateway's,
//! the container in its spec, the device online with an agent that speaks the stream
//! protocol), so that a user gets a clear HTTP error at once; then the connection is
//! upgraded to SPDY/3.1 (`101 Switching Protocols`, `Upgrade: SPDY/3.1`, the negotiated
//! `X-Stream-Protocol-Version`) and handed to `spdy_exec.rs` or `spdy_port_forward.rs`,
//! or to WebSocket (`Upgrade: websocket`, the negotiated `Sec-WebSocket-Protocol`):
//! `ws_exec.rs` for exec and attach, and for port-forward the SPDY tunnel of
//! `ws_tunnel.rs` (SPDY/3.1 in binary messages) under `spdy_port_forward.rs`; the relay to the device over MQTT is in
//! `exec_relay.rs` and `spdy_port_forward.rs`.

use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use edge_protocol::{DeviceId, StreamPod};
use hyper_util::rt::TokioIo;
use tracing::{debug, info};

use super::{ApiState, plain};
use crate::device_streams::{StreamRequestTarget, check_target};
use crate::stream_protocols::negotiation::{
    HEADER_ACCEPTED_PROTOCOL_VERSIONS, HEADER_PROTOCOL_VERSION, UPGRADE_SPDY_31, is_spdy_upgrade,
    negotiate,
};
use crate::stream_protocols::{port_forward, remote_command};

/// Timings of streaming connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// `--streaming-connection-idle-timeout`: a connection with no data either way for
    /// this long is closed (the kubelet's streamingConnectionIdleTimeout).
    pub idle_timeout: Duration,
    /// How long the client has to open its streams, and the device to answer an open.
    pub open_timeout: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(4 * 60 * 60),
            open_timeout: Duration::from_secs(10),
        }
    }
}

/// Exec or attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RemoteCommand {
    Exec { command: Vec<String> },
    Attach,
}

/// The protocol the client is upgraded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Upgrade {
    /// SPDY/3.1 with this `X-Stream-Protocol-Version`.
    Spdy(&'static str),
    /// WebSocket with this sub-protocol; `accept` is the `Sec-WebSocket-Accept`.
    WebSocket {
        protocol: &'static str,
        accept: String,
    },
}

/// Where a checked request goes: the device and the pod as the device knows it.
#[derive(Debug, Clone)]
pub(super) struct CheckedTarget {
    pub device: DeviceId,
    pub pod: StreamPod,
}

/// A checked request, ready to be upgraded.
#[derive(Debug, Clone)]
pub(super) struct StreamRequest {
    pub target: CheckedTarget,
    pub upgrade: Upgrade,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The WebSocket upgrade of a request that asks for one, among `protocols` (`None`:
/// WebSocket is not served on this route).
fn websocket_upgrade(
    headers: &HeaderMap,
    protocols: Option<&[&'static str]>,
) -> Option<Result<Upgrade, Response>> {
    let upgrade = header_values(headers, header::UPGRADE.as_str()).join(",");
    if !upgrade.to_ascii_lowercase().contains("websocket") {
        return None;
    }
    let Some(protocols) = protocols else {
        return Some(Err(plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: WebSocket is not served on this path; use SPDY/3.1",
        )));
    };
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Some(Err(plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing Sec-WebSocket-Key",
        )));
    };
    let offered = header_values(headers, header::SEC_WEBSOCKET_PROTOCOL.as_str());
    Some(
        negotiate(&offered, protocols)
            .map(|protocol| Upgrade::WebSocket {
                protocol,
                accept: tungstenite::handshake::derive_accept_key(key.as_bytes()),
            })
            .map_err(|e| {
                let status =
                    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                plain(status, e.to_string())
            }),
    )
}

/// Checks the target (the pod is the gateway's, the container in its spec, the device
/// online with an agent that speaks streams); the error response otherwise.
pub(super) async fn check_request(
    state: &ApiState,
    target: StreamRequestTarget<'_>,
) -> Result<CheckedTarget, Response> {
    let placement = state
        .fleet
        .stream_placement(target.namespace, target.pod)
        .await;
    let (device, pod) = match &placement {
        Some((placement, readiness)) => check_target(&target, Some(placement), readiness),
        None => check_target(&target, None, &Default::default()),
    }
    .map_err(|refusal| {
        let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::NOT_FOUND);
        plain(status, refusal.to_string())
    })?;
    Ok(CheckedTarget { device, pod })
}

/// Checks the upgrade headers, the protocol and the target; the error response otherwise.
async fn prepare(
    state: &ApiState,
    headers: &HeaderMap,
    target: StreamRequestTarget<'_>,
    protocols: &[&'static str],
    ws_protocols: Option<&[&'static str]>,
) -> Result<StreamRequest, Response> {
    let target = check_request(state, target).await?;
    if let Some(upgrade) = websocket_upgrade(headers, ws_protocols) {
        return Ok(StreamRequest {
            target,
            upgrade: upgrade?,
        });
    }
    let connection = header_values(headers, header::CONNECTION.as_str()).join(",");
    let upgrade = header_values(headers, header::UPGRADE.as_str()).join(",");
    if !is_spdy_upgrade(&connection, &upgrade) {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            format!("unable to upgrade: missing upgrade headers in request: {headers:?}"),
        ));
    }
    let protocol =
        negotiate(&header_values(headers, HEADER_PROTOCOL_VERSION), protocols).map_err(|e| {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
            let mut response = plain(status, e.to_string());
            if let Ok(v) = HeaderValue::from_str(&protocols.join(", ")) {
                response
                    .headers_mut()
                    .insert(HEADER_ACCEPTED_PROTOCOL_VERSIONS, v);
            }
            response
        })?;
    Ok(StreamRequest {
        target,
        upgrade: Upgrade::Spdy(protocol),
    })
}

/// The 101 answer, with the connection handed to `serve` once hyper has upgraded it.
fn switch_protocols<F, Fut>(request: Request, upgrade: &Upgrade, serve: F) -> Response
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let request_path = request.uri().path().to_owned();
    let on_upgrade = hyper::upgrade::on(request);
    match upgrade {
        Upgrade::Spdy(protocol) => {
            info!(upgrade = "spdy", protocol, path = %request_path, "streaming upgrade")
        }
        Upgrade::WebSocket { protocol, .. } => {
            info!(upgrade = "websocket", protocol, path = %request_path, "streaming upgrade")
        }
    }
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => debug!(error = %e, "streaming upgrade failed"),
        }
    });
    let headers = match upgrade {
        Upgrade::Spdy(protocol) => [
            (header::UPGRADE, UPGRADE_SPDY_31.to_owned()),
            (
                header::HeaderName::from_static("x-stream-protocol-version"),
                (*protocol).to_owned(),
            ),
            (header::CONNECTION, "Upgrade".to_owned()),
        ],
        Upgrade::WebSocket { protocol, accept } => [
            (header::UPGRADE, "websocket".to_owned()),
            (header::SEC_WEBSOCKET_PROTOCOL, (*protocol).to_owned()),
            (header::SEC_WEBSOCKET_ACCEPT, accept.clone()),
        ],
    };
    let mut response = (StatusCode::SWITCHING_PROTOCOLS, headers).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response
}

/// The `command` query values of an exec.
fn command_of(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The path of `/exec` and `/attach` (with or without the pod's uid).
#[derive(Debug, serde::Deserialize)]
pub(super) struct RemoteCommandPath {
    pub namespace: String,
    pub pod: String,
    pub uid: Option<String>,
    pub container: String,
}

/// The path of `/portForward` (with or without the pod's uid).
#[derive(Debug, serde::Deserialize)]
pub(super) struct PortForwardPath {
    namespace: String,
    pod: String,
    uid: Option<String>,
}

async fn remote_command(
    state: ApiState,
    path: RemoteCommandPath,
    query: Option<String>,
    request: Request,
    attach: bool,
) -> Response {
    let query = query.unwrap_or_default();
    let options = match remote_command::ExecOptions::from_query(&query) {
        Ok(o) => o,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let kind = if attach {
        RemoteCommand::Attach
    } else {
        let command = command_of(&query);
        if command.is_empty() {
            return plain(
                StatusCode::BAD_REQUEST,
                "you must specify at least one command for the container",
            );
        }
        RemoteCommand::Exec { command }
    };
    let target = StreamRequestTarget {
        namespace: &path.namespace,
        pod: &path.pod,
        uid: path.uid.as_deref(),
        container: Some(&path.container),
        what: if attach { "attach" } else { "exec" },
    };
    let checked = match prepare(
        &state,
        request.headers(),
        target,
        remote_command::SPDY_PROTOCOLS,
        Some(super::ws_exec::WS_PROTOCOLS),
    )
    .await
    {
        Ok(c) => c,
        Err(response) => return response,
    };
    let upgrade = checked.upgrade.clone();
    let session = super::exec_relay::ExecSession {
        streams: state.fleet.streams().clone(),
        target: checked.target,
        container: path.container,
        kind,
        options,
        settings: state.streaming,
        shutdown: state.shutdown.clone(),
    };
    let serve_upgrade = upgrade.clone();
    switch_protocols(request, &upgrade, move |io| async move {
        match serve_upgrade {
            Upgrade::Spdy(_) => match super::spdy_exec::SpdyExecClient::new(io, &session.options) {
                Ok(client) => session.run(client).await,
                Err(e) => debug!(error = %e, "cannot start a SPDY session"),
            },
            Upgrade::WebSocket { protocol, .. } => {
                match super::ws_exec::WsExecClient::new(io, protocol).await {
                    Ok(client) => session.run(client).await,
                    Err(e) => debug!(error = %e, "cannot start a WebSocket session"),
                }
            }
        }
    })
}

/// `/exec/{namespace}/{pod}[/{uid}]/{container}`.
pub(super) async fn exec(
    State(state): State<ApiState>,
    Path(path): Path<RemoteCommandPath>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    remote_command(state, path, query, request, false).await
}

/// `/attach/{namespace}/{pod}[/{uid}]/{container}`.
pub(super) async fn attach(
    State(state): State<ApiState>,
    Path(path): Path<RemoteCommandPath>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    remote_command(state, path, query, request, true).await
}

/// `/portForward/{namespace}/{pod}[/{uid}]`.
pub(super) async fn port_forward(
    State(state): State<ApiState>,
    Path(path): Path<PortForwardPath>,
    request: Request,
) -> Response {
    let target = StreamRequestTarget {
        namespace: &path.namespace,
        pod: &path.pod,
        uid: path.uid.as_deref(),
        container: None,
        what: "port-forward",
    };
    let checked = match prepare(
        &state,
        request.headers(),
        target,
        port_forward::SPDY_PROTOCOLS,
        Some(&[super::ws_tunnel::PORT_FORWARD_TUNNEL_PROTOCOL]),
    )
    .await
    {
        Ok(c) => c,
        Err(response) => return response,
    };
    let upgrade = checked.upgrade.clone();
    let session = super::spdy_port_forward::PortForwardSession {
        streams: state.fleet.streams().clone(),
        target: checked.target,
        settings: state.streaming,
        shutdown: state.shutdown.clone(),
    };
    let tunnelled = matches!(upgrade, Upgrade::WebSocket { .. });
    switch_protocols(request, &upgrade, move |io| async move {
        if tunnelled {
            session.run(super::ws_tunnel::WsTunnel::new(io).await).await
        } else {
            session.run(io).await
        }
    })
}
