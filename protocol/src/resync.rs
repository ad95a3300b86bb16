//! Resync requests, both directions: the device asks for its whole desired set
//! (`up/resync`); the gateway asks for a full status report (`down/resync`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ResyncRequest {
    /// The generation the sender last applied or acknowledged (0 if none).
    pub known_generation: u64,
    /// Why, for logs: `agent start`, `generation gap`, `gateway start`.
    pub reason: String,
}
