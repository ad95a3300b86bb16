//! Whether the Node named like a device is the gateway's to manage (see
//! [`crate::node_ownership`]): pods are only delivered to a device once its Node is
//! confirmed as ours.

use std::time::{Duration, Instant};

/// How long a device whose Node name belongs to someone else is refused before the
/// gateway looks at the Node again (it may have been deleted meanwhile).
pub const REFUSAL_RECHECK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeClaim {
    /// A new device: its Node is being looked up or created; no pods yet.
    Unconfirmed,
    /// The Node is ours (created by us, or restored from our store).
    Owned,
    /// The Node exists and is not ours: the device gets nothing until `recheck_at`.
    Refused { recheck_at: Instant },
}

impl NodeClaim {
    pub fn is_owned(self) -> bool {
        self == NodeClaim::Owned
    }

    /// Whether the Node may be created or updated now.
    pub fn may_upsert(self, now: Instant) -> bool {
        match self {
            NodeClaim::Refused { recheck_at } => now >= recheck_at,
            NodeClaim::Unconfirmed | NodeClaim::Owned => true,
        }
    }
}
