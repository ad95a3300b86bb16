//! Log streaming: requests and cancels (`down/logs/{request}`), chunks
//! (`up/logs/{request}`); and the tails of new output a device sends now and then
//! (`up/logtail`), which the gateway keeps to answer `kubectl logs` while the device is
//! offline.

use serde::{Deserialize, Serialize};

use crate::binary::Base64Bytes;
use crate::node_report::UnixMillis;

/// The most log bytes one [`LogChunk`] carries; the gateway refuses bigger chunks.
pub const MAX_LOG_CHUNK_BYTES: usize = 64 * 1024;

/// The most bytes of one container's output one [`LogTailReport`] carries.
pub const MAX_LOG_TAIL_BYTES: usize = 16 * 1024;

/// New output of the device's containers since the previous report (only containers
/// that wrote something), each cut to its last [`MAX_LOG_TAIL_BYTES`] at a line start.
/// Sent at QoS 0 every `capabilities.log_tail_interval_seconds` while connected: a lost
/// report leaves a gap in the gateway's cached tail, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct LogTailReport {
    pub containers: Vec<ContainerLogTail>,
}

/// New output of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerLogTail {
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
    pub container: String,
    /// The output (stdout and stderr interleaved, as `kubectl logs` shows it).
    pub data: Base64Bytes,
    /// Output older than `data` was left out (more than the limit was written).
    pub truncated: bool,
    /// Time of the last line in `data`.
    pub until: UnixMillis,
}

/// The last `max` bytes of `data`, starting at a line start, and whether older output
/// was left out (a last line longer than `max` keeps only its end). How a device cuts a
/// [`ContainerLogTail`] and how the gateway bounds the tail it keeps.
pub fn cut_to_line_start(data: &[u8], max: usize) -> (&[u8], bool) {
    if data.len() <= max {
        return (data, false);
    }
    let from = data.len() - max;
    let start = if from > 0 && data[from - 1] == b'\n' {
        from
    } else {
        match data[from..].iter().position(|b| *b == b'\n') {
            Some(nl) if from + nl + 1 < data.len() => from + nl + 1,
            _ => from,
        }
    };
    (&data[start..], true)
}

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
