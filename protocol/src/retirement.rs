//! The gateway's order to a retired device (`down/retire`, protocol 1.3): stop and
//! remove every pod's containers, delete the pods' volumes and Secrets, the local store
//! and the device's key and certificate, then exit for good. Only the gateway may write
//! a device's `down/#` (see [`crate::topic::device_acl_patterns`]).

use serde::{Deserialize, Serialize};

/// `retireOrder`: the device was retired (`edge-gateway retire`, or its Node deleted with
/// the retire label) and must wipe itself and stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RetireOrder {
    /// Why, for the device's last log line (e.g. `retired by edge-gateway retire`).
    pub reason: String,
}
