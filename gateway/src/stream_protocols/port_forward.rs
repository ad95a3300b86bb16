//! The Kubernetes port-forward sub-protocol as the kubelet speaks it: over SPDY
//! (`portforward.k8s.io`: a data and an error stream per forwarded connection, paired by
//! `requestID`, port in the `port` header) and over WebSocket (two channels per port
//! from the `port` query, the first message on each prefixed with the port as 2-byte
//! little endian).

use std::collections::BTreeMap;

use super::spdy_headers::HeaderBlock;

pub const PORT_FORWARD_PROTOCOL_V1: &str = "portforward.k8s.io";
/// What this side offers on the SPDY path.
pub const SPDY_PROTOCOLS: &[&str] = &[PORT_FORWARD_PROTOCOL_V1];
pub const HEADER_STREAM_TYPE: &str = "streamType";
pub const HEADER_PORT: &str = "port";
pub const HEADER_REQUEST_ID: &str = "requestID";

/// Default cap on half-assembled pairs (bounds memory against stream floods).
pub const DEFAULT_MAX_PENDING_PAIRS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortForwardError {
    #[error("invalid streamType {0:?}")]
    InvalidStreamType(Option<String>),
    #[error("missing or invalid port header {0:?}")]
    InvalidPort(Option<String>),
    #[error("{0} stream already assigned for request {1}")]
    DuplicateStream(&'static str, String),
    #[error("streams of request {0} name different ports")]
    PortMismatch(String),
    #[error("too many half-open port-forward requests (limit {0})")]
    TooManyPending(usize),
    #[error("query parameter \"port\" is required")]
    NoPorts,
    #[error("unable to parse {0:?} as a port")]
    InvalidQueryPort(String),
}

/// A complete forwarded connection: bytes of `data_stream` go to `port` in the pod;
/// failures are written as text to `error_stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardPair {
    pub request_id: String,
    pub port: u16,
    pub data_stream: u32,
    pub error_stream: u32,
}

#[derive(Debug, Default)]
struct PendingPair {
    port: u16,
    data: Option<u32>,
    error: Option<u32>,
}

/// Pairs SPDY data and error streams into [`PortForwardPair`]s.
#[derive(Debug)]
pub struct SpdyPortForwardPairer {
    pending: BTreeMap<String, PendingPair>,
    max_pending: usize,
}

impl Default for SpdyPortForwardPairer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PENDING_PAIRS)
    }
}

impl SpdyPortForwardPairer {
    pub fn new(max_pending: usize) -> Self {
        Self {
            pending: BTreeMap::new(),
            max_pending,
        }
    }

    /// Records a newly opened stream; returns the pair once both halves are in.
    ///
    /// Without `requestID` (clients before Kubernetes 1.6) the id is derived like the
    /// kubelet does: the error stream's own id, the data stream's id minus 2.
    pub fn accept(
        &mut self,
        stream_id: u32,
        headers: &HeaderBlock,
    ) -> Result<Option<PortForwardPair>, PortForwardError> {
        let kind = headers.get(HEADER_STREAM_TYPE);
        let is_data = match kind {
            Some("data") => true,
            Some("error") => false,
            other => {
                return Err(PortForwardError::InvalidStreamType(
                    other.map(str::to_owned),
                ));
            }
        };
        let raw_port = headers.get(HEADER_PORT);
        let port = raw_port
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| PortForwardError::InvalidPort(raw_port.map(str::to_owned)))?;
        let request_id = match headers.get(HEADER_REQUEST_ID) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ if is_data => stream_id.wrapping_sub(2).to_string(),
            _ => stream_id.to_string(),
        };
        if !self.pending.contains_key(&request_id) && self.pending.len() >= self.max_pending {
            return Err(PortForwardError::TooManyPending(self.max_pending));
        }
        let pair = self
            .pending
            .entry(request_id.clone())
            .or_insert(PendingPair {
                port,
                ..PendingPair::default()
            });
        if pair.port != port {
            return Err(PortForwardError::PortMismatch(request_id));
        }
        let (slot, name) = if is_data {
            (&mut pair.data, "data")
        } else {
            (&mut pair.error, "error")
        };
        if slot.is_some() {
            return Err(PortForwardError::DuplicateStream(name, request_id));
        }
        *slot = Some(stream_id);
        let (Some(data_stream), Some(error_stream)) = (pair.data, pair.error) else {
            return Ok(None);
        };
        self.pending.remove(&request_id);
        Ok(Some(PortForwardPair {
            request_id,
            port,
            data_stream,
            error_stream,
        }))
    }

    /// Forgets a half-assembled pair containing `stream_id` (stream reset or timed out).
    pub fn forget_stream(&mut self, stream_id: u32) {
        self.pending
            .retain(|_, p| p.data != Some(stream_id) && p.error != Some(stream_id));
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The text the kubelet writes to the error stream when forwarding fails.
pub fn forward_error_message(port: u16, pod: &str, uid: &str, error: &str) -> String {
    format!("error forwarding port {port} to pod {pod}, uid {uid}: {error}")
}

/// Ports of a WebSocket port-forward request (`port` query values, each possibly
/// comma-separated; every port in 1..=65535).
pub fn ws_ports_from_query(query: &str) -> Result<Vec<u16>, PortForwardError> {
    let mut ports = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "port" {
            continue;
        }
        for part in value.split(',') {
            let port = part
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| PortForwardError::InvalidQueryPort(part.to_owned()))?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err(PortForwardError::NoPorts);
    }
    Ok(ports)
}

/// Role of a WebSocket port-forward channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsPortChannel {
    Data { port_index: usize },
    Error { port_index: usize },
}

/// Channel numbers of port `index`: data = 2·index, error = 2·index + 1.
pub fn ws_channels_of_port(index: usize) -> (u8, u8) {
    ((index * 2) as u8, (index * 2 + 1) as u8)
}

/// The role of `channel` given `port_count` ports, `None` if out of range.
pub fn ws_channel_role(channel: u8, port_count: usize) -> Option<WsPortChannel> {
    let port_index = usize::from(channel) / 2;
    if port_index >= port_count {
        return None;
    }
    Some(if channel % 2 == 0 {
        WsPortChannel::Data { port_index }
    } else {
        WsPortChannel::Error { port_index }
    })
}

/// The port prefix of the first message on each channel of that port.
pub fn ws_port_prefix(port: u16) -> [u8; 2] {
    port.to_le_bytes()
}

/// For a client: strips the 2-byte port prefix from the first data seen on a channel.
/// Feed every payload of one channel; returns the data after the prefix.
#[derive(Debug, Default)]
pub struct WsPortPrefix {
    seen: Vec<u8>,
    port: Option<u16>,
}

impl WsPortPrefix {
    pub fn push<'a>(&mut self, payload: &'a [u8]) -> &'a [u8] {
        if self.port.is_some() {
            return payload;
        }
        let need = 2 - self.seen.len();
        let take = need.min(payload.len());
        self.seen.extend_from_slice(&payload[..take]);
        if self.seen.len() == 2 {
            self.port = Some(u16::from_le_bytes([self.seen[0], self.seen[1]]));
        }
        &payload[take..]
    }

    /// The port announced by the prefix, once complete.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

#[cfg(test)]
mod tests;
