//! pods/exec, pods/attach and pods/portforward: the SPDY upgrade proxied to the node's
//! kubelet endpoint (the address `pods/log` uses, with the emulator's kubelet client
//! certificate), as kube-apiserver's upgrade-aware proxy does. The exec options travel
//! on as the kubelet names them (`input`, `output`, `error`, `tty`, `command`).
//!
//! A WebSocket request goes through to the kubelet as it came (its `Sec-WebSocket-*`
//! headers, and the kubelet's `Sec-WebSocket-Accept` and chosen sub-protocol back) when
//! the pod's Node declares `ExtendWebSocketsToKubelet` in `status.declaredFeatures`, as
//! kube-apiserver v1.36+ does with that feature gate on. For other Nodes it is refused
//! with 400, so that kubectl falls back to SPDY (the emulator does not translate
//! WebSocket to SPDY as kube-apiserver does).

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::errors::{ApiError, ApiResult};
use super::log_proxy::{bound_node, log_location};
use super::router::{Body, Context};

/// Largest kubelet response head read.
const MAX_HEAD: usize = 16 * 1024;

/// The Node feature under which WebSockets go through to the kubelet.
pub const WEBSOCKETS_TO_KUBELET: &str = "ExtendWebSocketsToKubelet";

/// Request headers of a WebSocket upgrade passed on to the kubelet.
const WEBSOCKET_REQUEST_HEADERS: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
];

/// Response headers of the kubelet's 101 passed back to the client.
const UPGRADE_RESPONSE_HEADERS: &[&str] = &[
    "x-stream-protocol-version",
    "sec-websocket-accept",
    "sec-websocket-protocol",
];

/// Whether `node` declares that its kubelet serves WebSockets itself.
pub fn declares_websockets(node: &Value) -> bool {
    node.pointer("/status/declaredFeatures")
        .and_then(Value::as_array)
        .is_some_and(|features| {
            features
                .iter()
                .any(|f| f.as_str() == Some(WEBSOCKETS_TO_KUBELET))
        })
}

/// The upgrade a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    Spdy,
    WebSocket,
}

/// Which upgrade to make to the kubelet of `node` for a request with this `Upgrade`
/// header, or the 400 that makes kubectl fall back to SPDY.
pub fn choose_upgrade(upgrade_header: &str, node: &Value) -> ApiResult<Upgrade> {
    let upgrade = upgrade_header.to_ascii_lowercase();
    if upgrade.contains("spdy/3.1") {
        return Ok(Upgrade::Spdy);
    }
    if upgrade.contains("websocket") && declares_websockets(node) {
        return Ok(Upgrade::WebSocket);
    }
    Err(ApiError::bad_request(format!(
        "upgrade {upgrade:?} is not supported by this API server for this node; use SPDY/3.1"
    )))
}

fn pct(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn containers(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The kubelet path of an exec or attach (`subresource`) from the API query.
fn remote_command_path(
    subresource: &str,
    ns: &str,
    name: &str,
    container: &str,
    query: &str,
) -> String {
    let mut params = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let on = v == "true" || v == "1";
        match k.as_ref() {
            "command" => params.push(format!("command={}", pct(&v))),
            "stdin" if on => params.push("input=1".to_owned()),
            "stdout" if on => params.push("output=1".to_owned()),
            "stderr" if on => params.push("error=1".to_owned()),
            "tty" if on => params.push("tty=1".to_owned()),
            _ => {}
        }
    }
    format!(
        "/{subresource}/{}/{}/{}?{}",
        pct(ns),
        pct(name),
        pct(container),
        params.join("&")
    )
}

/// Validates the request like kube-apiserver's ExecREST/AttachREST/PortForwardREST and
/// proxies its upgrade to the kubelet.
pub async fn proxy(
    ctx: &Arc<Context>,
    ns: &str,
    name: &str,
    subresource: &str,
    q: &HashMap<String, String>,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let pod = ctx
        .cluster
        .get_stored("pods", ns, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let node = bound_node(ctx, &pod, name)?;
    let upgrade = choose_upgrade(
        req.headers()
            .get(hyper::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        &node,
    )?;
    let query = req.uri().query().unwrap_or("").to_owned();
    let path = if subresource == "portforward" {
        let path = format!("/portForward/{}/{}", pct(ns), pct(name));
        match upgrade {
            // the WebSocket port-forward takes its ports from the query
            Upgrade::WebSocket if !query.is_empty() => format!("{path}?{query}"),
            _ => path,
        }
    } else {
        let names = containers(&pod);
        let container = match q.get("container").filter(|c| !c.is_empty()) {
            Some(c) if names.contains(c) => c.clone(),
            Some(c) => {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        };
        remote_command_path(subresource, ns, name, &container, &query)
    };
    let (host, port, _) = log_location(&pod, &node, "", &HashMap::new())?;
    let passed_on: Vec<(&str, String)> = match upgrade {
        Upgrade::Spdy => &["x-stream-protocol-version"][..],
        Upgrade::WebSocket => WEBSOCKET_REQUEST_HEADERS,
    }
    .iter()
    .flat_map(|name| {
        req.headers()
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| (*name, v.to_owned()))
            .collect::<Vec<_>>()
    })
    .collect();
    let mut kubelet = ctx
        .kubelet_client
        .connect(&host, port)
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
    let (method, upgrade_token) = match upgrade {
        Upgrade::Spdy => ("POST", "SPDY/3.1"),
        Upgrade::WebSocket => ("GET", "websocket"),
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\nUpgrade: {upgrade_token}\r\nContent-Length: 0\r\n"
    );
    for (name, value) in &passed_on {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    kubelet
        .write_all(head.as_bytes())
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
    // the kubelet's answer: its head, and what came after it
    let mut buf = Vec::new();
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = kubelet.read(&mut chunk).await.unwrap_or(0);
        if n == 0 || buf.len() > MAX_HEAD {
            return Err(ApiError::internal("the kubelet closed the upgrade"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let response_head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = buf[end + 4..].to_vec();
    let status: u16 = response_head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let header = |name: &str| {
        response_head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if status != 101 {
        // the kubelet's body as the message (plain text, at most a few KiB)
        let mut body = rest;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            let mut chunk = [0u8; 4096];
            while body.len() < 4096 {
                match kubelet.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        let message = String::from_utf8_lossy(&body).trim().to_owned();
        return Err(ApiError::new(status, "InternalError", message));
    }
    let answered: Vec<(&str, String)> = UPGRADE_RESPONSE_HEADERS
        .iter()
        .filter_map(|name| header(name).map(|v| (*name, v)))
        .collect();
    let on_upgrade = hyper::upgrade::on(req);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        if client.write_all(&rest).await.is_err() {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet) => {}
        }
    });
    let mut resp = Response::builder()
        .status(101)
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, upgrade_token);
    for (name, value) in answered {
        resp = resp.header(name, value);
    }
    resp.body(super::router::empty_body())
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests;
