//! Which devices this replica owns: every device it has heard of, assigned over the live
//! replicas by [`rendezvous`](super::rendezvous), and what changed since the last
//! decision (pure).

use std::collections::BTreeSet;

use edge_protocol::DeviceId;

use super::rendezvous;

/// Bound on the devices remembered, so a client inventing ids cannot grow memory.
pub const MAX_KNOWN_DEVICES: usize = 2_000_000;

/// What a new decision changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handover {
    /// Devices this replica owns now and did not before: subscribe, then adopt.
    pub gained: Vec<DeviceId>,
    /// Devices it owned and no longer does: stop writing, unsubscribe, forget.
    pub lost: Vec<DeviceId>,
}

impl Handover {
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// The devices heard of and those owned.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    known: BTreeSet<DeviceId>,
    owned: BTreeSet<DeviceId>,
}

impl Assignment {
    /// Remembers a device (heard on `up/hello` or `up/state`, or in the store); `true`
    /// when it was new.
    pub fn learn(&mut self, device: DeviceId) -> bool {
        if self.known.contains(&device) || self.known.len() >= MAX_KNOWN_DEVICES {
            return false;
        }
        self.known.insert(device)
    }

    /// Forgets a device for good (retired).
    pub fn forget(&mut self, device: &DeviceId) -> Handover {
        self.known.remove(device);
        Handover {
            gained: Vec::new(),
            lost: self.owned.take(device).into_iter().collect(),
        }
    }

    pub fn owned(&self) -> &BTreeSet<DeviceId> {
        &self.owned
    }

    pub fn known(&self) -> usize {
        self.known.len()
    }

    /// Decides again: with `may_own` false (fenced or warming up) this replica owns
    /// nothing; otherwise every known device whose rendezvous owner among `live` is `me`.
    pub fn reassign(&mut self, me: &str, live: &BTreeSet<String>, may_own: bool) -> Handover {
        let owned: BTreeSet<DeviceId> = if may_own {
            self.known
                .iter()
                .filter(|d| rendezvous::owner(d, live.iter().map(String::as_str)) == Some(me))
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        let handover = Handover {
            gained: owned.difference(&self.owned).cloned().collect(),
            lost: self.owned.difference(&owned).cloned().collect(),
        };
        self.owned = owned;
        handover
    }
}

#[cfg(test)]
mod tests;
