//! Plain `GET`s on the Docker Engine API, decoded into loose JSON.
//!
//! bollard's typed models refuse values Podman sends (a container `State` of
//! `"stopped"`, for instance), which would make listing fail; for the two calls the
//! reconciler depends on (list and inspect) the agent reads JSON itself.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::container_runtime::RuntimeError;

/// Longest response accepted (a listing of many containers stays far below).
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("no end of headers")]
    NoEndOfHeaders,
    #[error("no status code")]
    NoStatusCode,
    #[error("bad chunk")]
    BadChunk,
    #[error("bad chunk size")]
    BadChunkSize,
    #[error("truncated chunk")]
    TruncatedChunk,
    #[error("invalid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
}

/// Where the Engine API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(String),
    Tcp(String),
}

impl Endpoint {
    pub fn parse(socket: &str) -> Self {
        if let Some(rest) = socket
            .strip_prefix("tcp://")
            .or_else(|| socket.strip_prefix("http://"))
        {
            Endpoint::Tcp(rest.trim_end_matches('/').to_owned())
        } else {
            Endpoint::Unix(socket.strip_prefix("unix://").unwrap_or(socket).to_owned())
        }
    }
}

/// A GET that takes longer than this counts as failed (the runtime is hung).
const GET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `GET path` (path includes the version prefix and query); returns the status code and
/// the JSON body.
pub async fn get_json(endpoint: &Endpoint, path: &str) -> Result<(u16, Value), RuntimeError> {
    tokio::time::timeout(GET_TIMEOUT, get_json_inner(endpoint, path))
        .await
        .map_err(|_| RuntimeError::Timeout(GET_TIMEOUT))?
}

async fn get_json_inner(endpoint: &Endpoint, path: &str) -> Result<(u16, Value), RuntimeError> {
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: edge-agent\r\nAccept: application/json\r\n\r\n"
    );
    let io = |e: std::io::Error| RuntimeError::Api(format!("GET {path}: {e}"));
    let raw = match endpoint {
        Endpoint::Unix(p) => {
            let s = tokio::net::UnixStream::connect(p).await.map_err(io)?;
            exchange(s, &request).await.map_err(io)?
        }
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map_err(io)?;
            exchange(s, &request).await.map_err(io)?
        }
    };
    parse_response(&raw).map_err(|m| RuntimeError::Api(format!("GET {path}: {m}")))
}

/// Writes `request` and reads the response (up to [`MAX_RESPONSE`] bytes).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut raw)
        .await?;
    Ok(raw)
}

/// Parses an HTTP/1.x response with a JSON body (identity or chunked encoding).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Value), ResponseError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ResponseError::NoEndOfHeaders)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ResponseError::NoStatusCode)?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut decoded = Vec::new();
    if chunked {
        loop {
            let line_end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or(ResponseError::BadChunk)?;
            let size_text = String::from_utf8_lossy(&body[..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| ResponseError::BadChunkSize)?;
            body = &body[line_end + 2..];
            if size == 0 {
                break;
            }
            let chunk = body.get(..size).ok_or(ResponseError::TruncatedChunk)?;
            decoded.extend_from_slice(chunk);
            body = body.get(size + 2..).unwrap_or(&[]);
        }
        body = &decoded;
    }
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)?
    };
    Ok((status, value))
}

#[cfg(test)]
mod tests;
