//! Log streaming: requests and cancels (`down/logs/{request}`), chunks
//! (`up/logs/{request}`).

use serde::{Deserialize, Serialize};

use crate::binary::Base64Bytes;
use crate::node_report::UnixMillis;

/// The most log bytes one [`LogChunk`] carries; the gateway refuses bigger chunks.
pub const MAX_LOG_CHUNK_BYTES: usize = 64 * 1024;

/// Asks the device for a container's log, with the kubelet's `containerLogs` options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct LogRequest {
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
    pub container: String,
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<u64>,
    pub since_time: Option<UnixMillis>,
    pub timestamps: bool,
    pub follow: bool,
    pub limit_bytes: Option<u64>,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
}

/// Stops a follow stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct LogCancel {
    pub reason: Option<String>,
}

/// A piece of a log stream. Sequence numbers start at 0 and increase by one, so the
/// gateway can detect loss (chunks travel at QoS 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct LogChunk {
    pub sequence: u64,
    pub data: Base64Bytes,
    /// No chunk follows this one.
    pub end_of_stream: bool,
    /// Set (with `end_of_stream`) when the request failed.
    pub error: Option<LogError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogError {
    pub code: LogErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogErrorCode {
    /// No such pod or container on the device.
    NotFound,
    /// `previous` asked, but the container has not restarted.
    NoPreviousInstance,
    BadRequest,
    /// The container runtime failed.
    Runtime,
}
