//! `edge-gateway check-ready`: asks the gateway's `/readyz` on `--metrics-listen` (loopback)
//! and turns the answer into an exit code, for an exec readiness probe. The kubelet's own
//! HTTP probes come from outside the pod, where the loopback listener cannot be reached,
//! and the kubelet API's endpoints need credentials a probe does not have.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// `edge-gateway check-ready` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckReadyArgs {
    /// The gateway's --metrics-listen (same flag and environment variable, so a probe in the
    /// gateway's container finds it without configuration). An unspecified address
    /// (0.0.0.0, ::) is asked on loopback.
    #[arg(
        long,
        env = "EDGE_GATEWAY_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// Give up after this long (e.g. 500ms, 3s).
    #[arg(long, default_value = "3s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

/// Why the gateway is not known to be ready.
#[derive(Debug, thiserror::Error)]
pub enum CheckReadyError {
    #[error(
        "--metrics-listen {0} has port 0: give the port the gateway reported in its ready file"
    )]
    PortZero(SocketAddr),
    #[error("cannot reach the gateway's /readyz at {addr}: {detail} (is the gateway running?)")]
    Unreachable { addr: SocketAddr, detail: String },
    #[error("no answer from the gateway's /readyz at {0} within the timeout")]
    Timeout(SocketAddr),
    #[error("the gateway is not ready (HTTP {status}): {body}")]
    NotReady { status: u16, body: String },
}

/// The address to ask: the listen address, with an unspecified IP replaced by loopback.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// GET `/readyz`: Ok with the body on 200, the reason otherwise.
pub async fn check_ready(args: &CheckReadyArgs) -> Result<String, CheckReadyError> {
    let addr = probe_address(args.metrics_listen);
    if addr.port() == 0 {
        return Err(CheckReadyError::PortZero(addr));
    }
    tokio::time::timeout(args.timeout, ask(addr))
        .await
        .unwrap_or(Err(CheckReadyError::Timeout(addr)))
}

async fn ask(addr: SocketAddr) -> Result<String, CheckReadyError> {
    let unreachable = |detail: String| CheckReadyError::Unreachable { addr, detail };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/readyz")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).trim().to_owned();
    if status == 200 {
        Ok(body)
    } else {
        Err(CheckReadyError::NotReady { status, body })
    }
}
