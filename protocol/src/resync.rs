//! Resync requests, both directions: the device asks for its whole desired set
//! (`up/resync`); the gateway asks the device to introduce itself again (`down/resync`),
//! which the device answers with its node report (`up/hello`) and a full status report
//! (`up/status` with `full: true`). A gateway that lost its store, or started while
//! devices stayed connected to an external broker, learns its fleet this way.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ResyncRequest {
    /// The generation the sender last applied or acknowledged (0 if none).
    pub known_generation: u64,
    /// Why, for logs: `agent start`, `generation gap`, `gateway start`.
    pub reason: String,
}
