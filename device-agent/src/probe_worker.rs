//! Liveness, readiness and startup probes of one running container (exec, HTTP GET,
//! TCP, gRPC), with the kubelet's thresholds; results go to the reconciler on transitions.
//!
//! | Module | Owns |
//! |---|---|
//! | `grpc_probe.rs` | one gRPC probe: `grpc.health.v1.Health/Check` over HTTP/2 (`h2`) |
//! | `health_proto.rs` | the health messages' protobuf and gRPC framing, by hand |

mod grpc_probe;
mod health_proto;

use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{ContainerSpec, Probe, ProbeHandler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container_runtime::ContainerRuntime;
use crate::pod_lifecycle::{ProbeKind, ProbeReport};

/// Consecutive-result thresholds of one probe (pure).
#[derive(Debug, Clone)]
pub struct ProbeCounter {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    state: Option<bool>,
}

impl ProbeCounter {
    pub fn new(probe: &Probe) -> Self {
        Self {
            success_threshold: probe.success_threshold.max(1),
            failure_threshold: probe.failure_threshold.max(1),
            successes: 0,
            failures: 0,
            state: None,
        }
    }

    /// Records one result; returns the new state when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.success_threshold && self.state != Some(true) {
                self.state = Some(true);
                return Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.failure_threshold && self.state != Some(false) {
                self.state = Some(false);
                return Some(false);
            }
        }
        None
    }
}

/// Runs the container's probes until cancelled (or a liveness/startup failure).
pub async fn run(
    runtime: Arc<dyn ContainerRuntime>,
    container_id: String,
    container: ContainerSpec,
    target_ip: String,
    reports: mpsc::UnboundedSender<ProbeReport>,
    cancel: CancellationToken,
) {
    let ctx = ProbeContext {
        runtime,
        container_id,
        target_ip,
        reports,
    };
    let work = async {
        if let Some(p) = &container.startup_probe
            && !ctx.probe_loop(ProbeKind::Startup, p).await
        {
            return;
        }
        let live = async {
            if let Some(p) = &container.liveness_probe {
                ctx.probe_loop(ProbeKind::Liveness, p).await;
            }
        };
        let ready = async {
            if let Some(p) = &container.readiness_probe {
                ctx.probe_loop(ProbeKind::Readiness, p).await;
            }
        };
        tokio::join!(live, ready);
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = work => {}
    }
}

struct ProbeContext {
    runtime: Arc<dyn ContainerRuntime>,
    container_id: String,
    target_ip: String,
    reports: mpsc::UnboundedSender<ProbeReport>,
}

impl ProbeContext {
    /// Probes forever (readiness) or until the state is decided: startup returns true on
    /// success, liveness and startup return false on failure.
    async fn probe_loop(&self, kind: ProbeKind, probe: &Probe) -> bool {
        tokio::time::sleep(Duration::from_secs(u64::from(probe.initial_delay_seconds))).await;
        let mut counter = ProbeCounter::new(probe);
        let period = Duration::from_secs(u64::from(probe.period_seconds.max(1)));
        let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.max(1)));
        loop {
            let (ok, message) = self.execute(&probe.handler, timeout).await;
            if let Some(state) = counter.record(ok) {
                let _ = self.reports.send(ProbeReport {
                    container_id: self.container_id.clone(),
                    kind,
                    success: state,
                    message,
                });
                match (kind, state) {
                    (ProbeKind::Startup, true) => return true,
                    (ProbeKind::Startup | ProbeKind::Liveness, false) => return false,
                    _ => {}
                }
            }
            tokio::time::sleep(period).await;
        }
    }

    async fn execute(&self, handler: &ProbeHandler, timeout: Duration) -> (bool, String) {
        match handler {
            ProbeHandler::Exec { command } => {
                match self
                    .runtime
                    .exec(&self.container_id, command, timeout)
                    .await
                {
                    Ok((0, _)) => (true, String::new()),
                    Ok((code, out)) => (
                        false,
                        format!("command {command:?} exited with {code}: {}", out.trim()),
                    ),
                    Err(e) => (false, e.to_string()),
                }
            }
            ProbeHandler::TcpSocket { host, port } => {
                let host = host.clone().unwrap_or_else(|| self.target_ip.clone());
                match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port)))
                    .await
                {
                    Ok(Ok(_)) => (true, String::new()),
                    Ok(Err(e)) => (false, dial_error(&host, *port, &e)),
                    Err(_) => (false, format!("dial tcp {host}:{port}: i/o timeout")),
                }
            }
            ProbeHandler::HttpGet {
                host,
                port,
                path,
                scheme,
                headers,
            } => {
                let host = host.clone().unwrap_or_else(|| self.target_ip.clone());
                let tls = scheme.eq_ignore_ascii_case("https");
                let url_scheme = if tls { "https" } else { "http" };
                let headers: Vec<(String, String)> = headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect();
                let get = http_get(&host, *port, tls, path, &headers);
                match tokio::time::timeout(timeout, get).await {
                    Ok(Ok(code)) if (200..400).contains(&code) => (true, String::new()),
                    Ok(Ok(code)) => (false, format!("HTTP probe failed with statuscode: {code}")),
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
                        false,
                        format!(
                            "Get \"{url_scheme}://{host}:{port}{path}\": {}",
                            dial_error(&host, *port, &e)
                        ),
                    ),
                    Ok(Err(e)) => (
                        false,
                        format!("Get \"{url_scheme}://{host}:{port}{path}\": {e}"),
                    ),
                    Err(_) => (
                        false,
                        format!(
                            "Get \"{url_scheme}://{host}:{port}{path}\": context deadline exceeded"
                        ),
                    ),
                }
            }
            ProbeHandler::Grpc { port, service } => {
                let service = service.as_deref().unwrap_or_default();
                grpc_probe::probe(&self.target_ip, *port, service, timeout).await
            }
        }
    }
}

/// A failed connect as Go's dialer words it (`dial tcp 10.0.0.5:80: connect: connection
/// refused`), as in the kubelet's probe messages.
fn dial_error(host: &str, port: u16, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        format!("dial tcp {host}:{port}: connect: connection refused")
    } else {
        format!("dial tcp {host}:{port}: {e}")
    }
}

/// A minimal HTTP/1.1 GET (over TLS without certificate checks when `tls`) returning
/// the status code.
pub async fn http_get(
    host: &str,
    port: u16,
    tls: bool,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let tcp = TcpStream::connect((host, port)).await?;
    if !tls {
        return http_get_on(tcp, host, port, path, headers).await;
    }
    let config = crate::insecure_tls::probe_client_config()
        .ok_or_else(|| std::io::Error::other("TLS is not available"))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    http_get_on(stream, host, port, path, headers).await
}

async fn http_get_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let path = if path.is_empty() { "/" } else { path };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/edge-agent\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        if !k.contains(['\r', '\n']) && !v.contains(['\r', '\n']) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

#[cfg(test)]
mod tests;
