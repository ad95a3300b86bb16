//! Agent updates over the air (protocol 1.4): the gateway orders a device to run a signed
//! agent version, serves the binary in chunks the device fetches at its own pace, and the
//! device reports how far it got.
//!
//! ```text
//! gateway                                   device (agent under `edge-agent supervise`)
//!   down/agent-update  agentUpdateOrder  ──▶  version, sha256, size, signature
//!   up/agent-update    agentUpdateFetch  ◀──  offset, length (≤ AGENT_UPDATE_CHUNK_BYTES)
//!   down/agent-update  agentUpdateChunk  ──▶  offset, data
//!   up/agent-update    agentUpdateStatus ◀──  downloading … staged (the supervisor swaps)
//!   up/hello           nodeReport        ◀──  agentVersion = the new version, agentUpdate = committed
//!                                             (or the old version and agentUpdate = rolledBack)
//! ```
//!
//! The signature is the fleet's ed25519 signature over [`signed_manifest`] (version and
//! SHA-256), checked against the key pinned on the device at enrollment: the gateway only
//! relays what an operator signed offline, so a compromised gateway cannot push its own
//! agent. A device fetches only the version it was ordered; the gateway serves only that.

use serde::{Deserialize, Serialize};

use crate::binary::Base64Bytes;
use crate::node_report::UnixMillis;

/// Largest chunk a device may ask for: base64 inside JSON keeps it far below
/// [`crate::MAX_MESSAGE_BYTES`], and a slow link carries one in reasonable time.
pub const AGENT_UPDATE_CHUNK_BYTES: u64 = 256 * 1024;

/// Largest agent binary the protocol carries (a static agent is 5-15 MB).
pub const MAX_AGENT_BINARY_BYTES: u64 = 256 * 1024 * 1024;

/// The text an update's signature covers: `edge-agent-ota v1`, the version and the
/// binary's SHA-256 (lowercase hex), one per line. `openssl pkeyutl -sign -rawin` of this
/// text with the fleet's OTA key gives the signature (docs/deploy.md "Upgrade the agent").
pub fn signed_manifest(version: &str, sha256_hex: &str) -> String {
    format!("edge-agent-ota v1\nversion={version}\nsha256={sha256_hex}\n")
}

/// `agentUpdateOrder` on `down/agent-update`: run agent `version`. A device already
/// running it reports `committed`; one that cannot update itself (no supervisor, no pinned
/// key) reports `failed` with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentUpdateOrder {
    /// The signed version (e.g. `0.4.0`); also what the new agent reports as its version.
    pub version: String,
    /// The binary's SHA-256, lowercase hex.
    pub sha256: String,
    pub size_bytes: u64,
    /// 64 bytes: the ed25519 signature over [`signed_manifest`].
    pub signature: Base64Bytes,
    /// How long the new agent has to connect and report healthy before the supervisor
    /// restores the previous one.
    pub health_deadline_seconds: u32,
}

/// `agentUpdateFetch` on `up/agent-update`: the device asks for bytes
/// `offset..offset + length` of the binary of `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentUpdateFetch {
    pub version: String,
    pub offset: u64,
    /// At most [`AGENT_UPDATE_CHUNK_BYTES`]; the gateway answers with less at the end.
    pub length: u64,
}

/// `agentUpdateChunk` on `down/agent-update`: bytes of the binary of `version` from
/// `offset`. An empty chunk with an `error` says the gateway will not serve the fetch
/// (no such version for this device, offset past the end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentUpdateChunk {
    pub version: String,
    pub offset: u64,
    pub data: Base64Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a device is with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum AgentUpdatePhase {
    /// Fetching the binary (`bytesReceived` of `totalBytes`).
    #[default]
    Downloading,
    /// Verified and staged: the supervisor is starting the new agent on trial.
    Staged,
    /// The new agent reported healthy and is the current one.
    Committed,
    /// The new agent did not report healthy in time (or exited): the previous agent is
    /// back. `message` says why.
    RolledBack,
    /// The update could not even start (bad signature, no pinned key, no supervisor,
    /// download refused); the running agent is unchanged. `message` says why.
    Failed,
    /// A phase of a newer protocol: a reader keeps the rest of the message (a node report
    /// carrying it stays readable) and ignores the status.
    #[serde(other)]
    Unknown,
}

impl AgentUpdatePhase {
    /// The update for this version is over (either way).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AgentUpdatePhase::Committed | AgentUpdatePhase::RolledBack | AgentUpdatePhase::Failed
        )
    }
}

/// `agentUpdateStatus` on `up/agent-update`, and the node report's `agentUpdate` (the last
/// one, so a gateway that restarted, or an agent that was rolled back, still tells).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentUpdateStatus {
    /// The version this status is about (the ordered one).
    pub version: String,
    pub phase: AgentUpdatePhase,
    pub bytes_received: u64,
    pub total_bytes: u64,
    /// Why, for `rolledBack` and `failed`; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the device entered this phase.
    pub since: UnixMillis,
}

#[cfg(test)]
mod tests;
