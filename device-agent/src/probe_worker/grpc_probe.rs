//! One gRPC probe as the kubelet runs it: `grpc.health.v1.Health/Check` over plaintext
//! HTTP/2 to the pod's address, the probe's timeout as the deadline, healthy only on
//! `SERVING`, with the kubelet's messages.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::health_proto::{self, ServingStatus};

/// The `user-agent` of the call.
const USER_AGENT: &str = "kube-probe/edge-agent";

/// How a call ended short of a `HealthCheckResponse`: a gRPC status.
#[derive(Debug)]
struct RpcError {
    code: u32,
    message: String,
}

impl RpcError {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn transport(e: h2::Error) -> Self {
        Self::new(
            health_proto::CODE_UNAVAILABLE,
            format!("connection error: {e}"),
        )
    }
}

/// Probes `host:port`: `(true, "")` when the server answers `SERVING` for `service`
/// within `timeout`, else `(false, why)` worded as the kubelet words it.
pub async fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let within = health_proto::go_duration(timeout);
    let Ok(tcp) = tokio::time::timeout_at(deadline, connect(&addr)).await else {
        return (
            false,
            format!(
                "timeout: failed to connect service {addr:?} within {within}: context deadline exceeded"
            ),
        );
    };
    match tokio::time::timeout_at(deadline, check(tcp, &addr, service, timeout)).await {
        Ok(Ok(status)) if status == ServingStatus::SERVING => (true, String::new()),
        Ok(Ok(status)) => (
            false,
            format!("service unhealthy (responded with {:?})", status.name()),
        ),
        Ok(Err(e)) if e.code == health_proto::CODE_UNIMPLEMENTED => (
            false,
            format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                e.message
            ),
        ),
        Ok(Err(e)) if e.code == health_proto::CODE_DEADLINE_EXCEEDED => (
            false,
            format!("timeout: health rpc did not complete within {within}"),
        ),
        Err(_) => (
            false,
            format!("timeout: health rpc did not complete within {within}"),
        ),
        Ok(Err(e)) => (
            false,
            format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {}",
                health_proto::code_name(e.code),
                e.message
            ),
        ),
    }
}

/// Connects, retrying with back-off until the caller's deadline (the kubelet dials with
/// `WithBlock`, so a refused connection is retried until the probe times out).
async fn connect(addr: &str) -> TcpStream {
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(tcp) = TcpStream::connect(addr).await {
            return tcp;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Aborts the HTTP/2 connection's driver task when the call is over.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One `Check` call on a fresh connection.
async fn check(
    tcp: TcpStream,
    authority: &str,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, RpcError> {
    let (client, connection) = h2::client::handshake(tcp)
        .await
        .map_err(RpcError::transport)?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut client = client.ready().await.map_err(RpcError::transport)?;
    let request = http::Request::post(format!("http://{authority}{}", health_proto::CHECK_PATH))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", USER_AGENT)
        .header("grpc-timeout", health_proto::grpc_timeout(timeout))
        .body(())
        .map_err(|e| RpcError::new(health_proto::CODE_INTERNAL, e.to_string()))?;
    let (response, mut send) = client
        .send_request(request, false)
        .map_err(RpcError::transport)?;
    send.send_data(Bytes::from(health_proto::check_request(service)), true)
        .map_err(RpcError::transport)?;
    let (head, mut body) = response.await.map_err(RpcError::transport)?.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(RpcError::new(
            health_proto::code_of_http_status(head.status.as_u16()),
            format!(
                "unexpected HTTP status code received from server: {}",
                head.status
            ),
        ));
    }
    let mut message = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(RpcError::transport)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
        if message.len() > health_proto::MAX_RESPONSE_BYTES + 5 {
            return Err(RpcError::new(
                health_proto::CODE_INTERNAL,
                "response message too large",
            ));
        }
    }
    let trailers = body.trailers().await.map_err(RpcError::transport)?;
    // a "trailers-only" response carries the status in its headers
    let status = trailers.as_ref().unwrap_or(&head.headers);
    let header = |name: &str| status.get(name).and_then(|v| v.to_str().ok());
    let code = match header("grpc-status").map(str::parse::<u32>) {
        Some(Ok(code)) => code,
        Some(Err(_)) => {
            return Err(RpcError::new(
                health_proto::CODE_INTERNAL,
                "malformed grpc-status",
            ));
        }
        None => {
            return Err(RpcError::new(
                health_proto::CODE_INTERNAL,
                "server closed the stream without sending trailers",
            ));
        }
    };
    if code != health_proto::CODE_OK {
        let text = header("grpc-message").map(health_proto::percent_decode);
        return Err(RpcError::new(code, text.unwrap_or_default()));
    }
    health_proto::check_response(&message)
        .map_err(|e| RpcError::new(health_proto::CODE_INTERNAL, e.to_string()))
}

#[cfg(test)]
mod tests;
