//! Reconnecting to a broker with several nodes (a cluster): which node to try next and
//! how long to wait first. The wait doubles per failure up to a maximum and is jittered
//! (between half and all of it), so a fleet that lost the same node does not come back
//! in lock-step; a successful connection starts over. Pure: the caller supplies the
//! randomness ([`jitter_seed`] gives some without a dependency) and does the waiting.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How long a client waits for its CONNACK (TCP connect included) before it gives the
/// attempt up and tries the next node. Longer than a clustered broker may spend on one
/// CONNECT while it fails over: NATS 2.9 gives each JetStream request of a CONNECT 4 s
/// (session stream, session record, deleting the old session's consumers) and took 12 s
/// here. A client that gives up sooner leaves that CONNECT running on the node while it
/// connects to another one; when the late CONNECT (clean session) completes, the node
/// deletes the consumers of the session record, which by then are the newer
/// connection's: that connection keeps its subscriptions but never receives a message
/// again. (rumqttc's own default is 5 s.)
pub const CONNACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the next connection attempt goes, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFailover {
    nodes: usize,
    current: usize,
    initial: Duration,
    max: Duration,
    next_wait: Duration,
}

impl BrokerFailover {
    /// `nodes` broker addresses (at least one is assumed), waits from `initial` to `max`.
    pub fn new(nodes: usize, initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Self {
            nodes: nodes.max(1),
            current: 0,
            initial,
            max,
            next_wait: initial,
        }
    }

    /// Index of the node the current (or next) connection uses.
    pub fn current(&self) -> usize {
        self.current
    }

    /// A connection was accepted: the next failure waits `initial` (jittered) again.
    pub fn connected(&mut self) {
        self.next_wait = self.initial;
    }

    /// A connection failed or broke: moves on to the next node and returns it with the
    /// time to wait before trying it (`random` picks the jitter).
    pub fn failed(&mut self, random: u64) -> (usize, Duration) {
        self.current = (self.current + 1) % self.nodes;
        let full = self.next_wait;
        self.next_wait = (self.next_wait * 2).min(self.max);
        let half = full / 2;
        let spread = u64::try_from((full - half).as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(random % spread.saturating_add(1));
        (self.current, half + jitter)
    }
}

/// A random number for [`BrokerFailover::failed`], from the standard library's
/// per-process random hash keys (fresh for every call).
pub fn jitter_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(0))
            .unwrap_or(0),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests;
