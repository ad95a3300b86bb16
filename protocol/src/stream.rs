//! Interactive streams between the gateway and a device: `kubectl exec`, `attach` and
//! `port-forward`, carried over the existing MQTT connection
//! (`down/stream/{stream}` and `up/stream/{stream}`).
//!
//! # Life of a stream
//!
//! 1. The gateway publishes [`StreamOpen`] on `down/stream/{stream}` with what to run
//!    or where to connect, and the window it grants the device.
//! 2. The device answers [`StreamOpened`] (with the window it grants the gateway) or a
//!    [`StreamClose`] carrying a [`StreamError`] (no such container, not running, ...).
//! 3. Both sides send [`StreamData`] on their channels; `end` half-closes a channel
//!    (stdin EOF, a port-forward peer's FIN). The gateway sends [`StreamResize`] for a TTY.
//! 4. Either side ends the stream with [`StreamClose`]: the device with the exit code of
//!    an exec, the gateway when the client went away or the stream was idle too long.
//!    A stream also ends when either side's MQTT connection goes away.
//!
//! # Flow control
//!
//! A sender may have at most the granted window of data bytes (the decoded
//! [`StreamData::data`], not the encoded message) outstanding; the receiver returns
//! [`StreamCredit`] as it hands data on (to the container's stdin, to the client). So a
//! slow reader on either end stops the writer at the other end, and neither side buffers
//! more than the window it granted for each stream.
//!
//! # Ordering and duplicates
//!
//! Everything travels at QoS 1 on one topic per direction, so the broker keeps the order.
//! [`StreamData::sequence`] counts from 0 per direction: a receiver drops a repeat
//! (a QoS 1 redelivery) and ends the stream with [`StreamErrorCode::Protocol`] on a gap.
//!
//! # Versions
//!
//! A device declares the stream protocol it speaks in its node report
//! ([`crate::DeviceCapabilities::streams`]); the gateway opens streams only to devices that
//! declare [`STREAM_PROTOCOL_VERSION`] or a later one, and tells the user to upgrade the
//! agent otherwise. [`StreamOpen::version`] carries the gateway's version and
//! [`StreamOpened::version`] the device's; each side sends [`StreamData`] in the
//! binary form of [`data_frame`] when the other's version is 2 or more, in a JSON
//! envelope otherwise, and reads both.

use serde::{Deserialize, Serialize};

use crate::binary::Base64Bytes;

pub mod data_frame;
pub mod flow;

pub use data_frame::{
    BINARY_DATA_FRAMES_SINCE, DataFrameError, decode_data_frame, encode_data_frame, is_data_frame,
};
pub use flow::{FlowError, ReceiveWindow, Received, SendWindow};

/// Version of the stream sub-protocol described here. 2 added binary data frames
/// ([`data_frame`]).
pub const STREAM_PROTOCOL_VERSION: u32 = 2;
/// The oldest stream protocol a device may speak for the gateway to open streams to it.
pub const MIN_STREAM_PROTOCOL_VERSION: u32 = 1;
/// The most data bytes one [`StreamData`] carries.
pub const MAX_STREAM_DATA_BYTES: usize = 32 * 1024;
/// The window each side grants by default: 8 frames of [`MAX_STREAM_DATA_BYTES`].
pub const DEFAULT_STREAM_WINDOW_BYTES: u64 = 256 * 1024;
/// The largest window a side may grant; a receiver of a bigger grant clamps it.
pub const MAX_STREAM_WINDOW_BYTES: u64 = 4 * 1024 * 1024;

/// The pod a stream is for, as the device knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamPod {
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
}

/// Which of a process's standard streams an exec or attach connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct StdioSelection {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Allocate (exec) or expect (attach) a terminal; stderr is merged into stdout then.
    pub tty: bool,
}

/// What a stream connects to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum StreamTarget {
    /// Runs `command` in the container (`kubectl exec`, `kubectl cp`).
    Exec {
        pod: StreamPod,
        container: String,
        command: Vec<String>,
        stdio: StdioSelection,
    },
    /// Attaches to the container's main process (`kubectl attach`).
    Attach {
        pod: StreamPod,
        container: String,
        stdio: StdioSelection,
    },
    /// A TCP connection to `port` in the pod's network namespace (`kubectl port-forward`).
    PortForward { pod: StreamPod, port: u16 },
}

impl StreamTarget {
    pub fn pod(&self) -> &StreamPod {
        match self {
            StreamTarget::Exec { pod, .. }
            | StreamTarget::Attach { pod, .. }
            | StreamTarget::PortForward { pod, .. } => pod,
        }
    }
}

/// Gateway → device: start a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamOpen {
    /// The stream protocol version the gateway speaks.
    pub version: u32,
    pub target: StreamTarget,
    /// Initial terminal size, for a TTY.
    #[serde(default)]
    pub terminal_size: Option<TerminalSize>,
    /// Data bytes the device may send before it waits for [`StreamCredit`].
    pub window_bytes: u64,
}

/// Device → gateway: the stream is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamOpened {
    /// Data bytes the gateway may send before it waits for [`StreamCredit`].
    pub window_bytes: u64,
    /// The stream protocol version the device speaks (absent before 2: version 1).
    /// From [`BINARY_DATA_FRAMES_SINCE`] on, the gateway sends data in binary frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// The channel a [`StreamData`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamChannel {
    /// Gateway → device, exec and attach.
    Stdin,
    /// Device → gateway; with a TTY it also carries what the process writes to stderr.
    Stdout,
    /// Device → gateway, without a TTY.
    Stderr,
    /// Both directions, port-forward.
    Data,
}

/// Both directions: bytes of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamData {
    /// From 0, one per [`StreamData`] in this direction of this stream.
    pub sequence: u64,
    pub channel: StreamChannel,
    /// At most [`MAX_STREAM_DATA_BYTES`].
    #[serde(default)]
    pub data: Base64Bytes,
    /// Nothing more follows on this channel (stdin EOF, a peer's FIN).
    #[serde(default)]
    pub end: bool,
}

/// Both directions: the receiver has handed `bytes` more data bytes on; the sender may
/// send that many more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamCredit {
    pub bytes: u64,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// Gateway → device: the client's terminal changed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamResize {
    pub size: TerminalSize,
}

/// Both directions: the stream is over. From the device: the exec's exit code, or why
/// the stream could not start or broke. From the gateway: why it stops the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamClose {
    /// The exit code of an exec's process (0 = success).
    pub exit_code: Option<i32>,
    pub error: Option<StreamError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamError {
    pub code: StreamErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamErrorCode {
    /// No such pod or container on the device.
    NotFound,
    /// The container exists but is not running.
    NotRunning,
    /// Nothing listens on the port (port-forward).
    ConnectionRefused,
    /// The request is not valid (empty command, port 0, stdin without a channel, ...).
    BadRequest,
    /// The peer speaks a stream protocol this side does not, or the target is not
    /// supported by this device.
    Unsupported,
    /// The container runtime failed.
    Runtime,
    /// The sequence had a gap, data came beyond the window, or a message came out of
    /// order.
    Protocol,
    /// No data either way for longer than the idle timeout.
    IdleTimeout,
    /// The other end went away (the client closed, the device disconnected).
    Cancelled,
    /// The device runs as many streams as it accepts.
    TooManyStreams,
}

#[cfg(test)]
mod tests;
