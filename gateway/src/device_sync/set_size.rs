//! The encoded size of a device's desired set, kept pod by pod, so that a change which
//! would make the set too large for one MQTT message is refused before it is made
//! (instead of advancing the generation and then failing to send it).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use edge_protocol::{DesiredSet, MAX_DESIRED_SET_BYTES, Message, PodSpec};

/// Bytes kept free below [`MAX_DESIRED_SET_BYTES`] when pods are added or changed, so a
/// pod's deletion (which adds its grace period to the spec) always fits.
pub const TERMINATION_HEADROOM_BYTES: usize = 64 * 1024;

/// The most a desired set may hold after a pod is added or changed.
pub const ADMISSION_LIMIT_BYTES: usize = MAX_DESIRED_SET_BYTES - TERMINATION_HEADROOM_BYTES;

/// Encoded sizes of the pods of one set, and their sum.
#[derive(Debug, Clone, Default)]
pub struct SetSize {
    pods: BTreeMap<String, usize>,
    sum: usize,
}

/// The JSON size of one pod spec as it appears inside a desired-set message.
pub fn pod_bytes(spec: &PodSpec) -> usize {
    // a spec that cannot be serialized cannot be sent either: count it as too large
    serde_json::to_vec(spec).map_or(usize::MAX / 4, |v| v.len())
}

/// The envelope of an empty set with the longest generation number (computed once).
static ENVELOPE_BYTES: LazyLock<usize> = LazyLock::new(|| {
    let empty = DesiredSet {
        generation: u64::MAX,
        pods: Vec::new(),
    };
    Message::DesiredSet(empty)
        .encode()
        .map_or(1024, |v| v.len())
});

impl SetSize {
    pub fn of<'a>(pods: impl Iterator<Item = &'a PodSpec>) -> Self {
        let mut size = Self::default();
        for p in pods {
            size.insert(&p.uid, pod_bytes(p));
        }
        size
    }

    pub fn insert(&mut self, uid: &str, bytes: usize) {
        self.remove(uid);
        self.pods.insert(uid.to_owned(), bytes);
        self.sum = self.sum.saturating_add(bytes);
    }

    pub fn remove(&mut self, uid: &str) {
        if let Some(old) = self.pods.remove(uid) {
            self.sum = self.sum.saturating_sub(old);
        }
    }

    /// The set's encoded size if `uid` had `bytes` (added, or replacing its old size).
    pub fn total_with(&self, uid: &str, bytes: usize) -> usize {
        let old = self.pods.get(uid).copied();
        let others = self.sum.saturating_sub(old.unwrap_or(0));
        let count = self.pods.len() + usize::from(old.is_none());
        // pods are a JSON array: one comma between two entries
        *ENVELOPE_BYTES + others + bytes + count.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests;
