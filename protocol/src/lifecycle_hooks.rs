//! A container's lifecycle hooks (Kubernetes `lifecycle.postStart` / `preStop`) and
//! termination message settings (`terminationMessagePath`, `terminationMessagePolicy`),
//! added in protocol 1.3 and applied by agents declaring
//! [`crate::DeviceCapabilities::lifecycle_hooks`].

use serde::{Deserialize, Serialize};

use crate::HttpHeader;

/// Where the kubelet binds the termination message file unless a container names another
/// path.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// Kubernetes `Lifecycle`: handlers run after the container starts and before it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
}

/// One hook action with numeric ports (named ports are resolved by the gateway).
/// `tcpSocket`, which the kubelet does not run, is never sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum LifecycleHandler {
    /// A command run in the container (Engine API exec).
    Exec { command: Vec<String> },
    /// An HTTP GET to `host` (default: the pod IP); any answer is success.
    HttpGet {
        #[serde(default)]
        host: Option<String>,
        port: u16,
        #[serde(default)]
        path: String,
        /// `HTTP` or `HTTPS`.
        #[serde(default)]
        scheme: String,
        #[serde(default)]
        headers: Vec<HttpHeader>,
    },
    /// Waits this long.
    Sleep { seconds: u64 },
}

/// Kubernetes `terminationMessagePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TerminationMessagePolicy {
    /// The message is the file's content only.
    #[default]
    File,
    /// An empty file after a failed exit: the tail of the container's log.
    FallbackToLogsOnError,
}

impl TerminationMessagePolicy {
    /// `skip_serializing_if`: the default is left out, so specs without it hash as before.
    #[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
    pub fn is_file(&self) -> bool {
        *self == TerminationMessagePolicy::File
    }
}

#[cfg(test)]
mod tests;
