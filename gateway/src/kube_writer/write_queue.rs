//! One shard's queue of Kubernetes writes, bounded by what it holds rather than by how
//! often it is fed: a newer Lease renewal, node status or pod status replaces the one
//! still waiting for the same object (latest wins, in the waiting one's place), and
//! Events beyond [`MAX_QUEUED_EVENTS`] are dropped and counted, as the kubelet's event
//! broadcaster drops them when its queue is full.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use edge_protocol::DeviceId;
use tokio::sync::Notify;

use super::KubeOp;
use crate::metrics::Metrics;

/// Events a shard holds at most while the API server is slow.
pub const MAX_QUEUED_EVENTS: usize = 1000;

/// The object a replaceable write is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Supersedes {
    Lease(DeviceId),
    NodeStatus(DeviceId),
    PodStatus(String),
}

fn supersedes(op: &KubeOp) -> Option<Supersedes> {
    match op {
        KubeOp::RenewLease { device, .. } => Some(Supersedes::Lease(device.clone())),
        KubeOp::PatchNodeStatus { device, .. } => Some(Supersedes::NodeStatus(device.clone())),
        KubeOp::PatchPodStatus { uid, .. } => Some(Supersedes::PodStatus(uid.clone())),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Slots {
    /// Queued writes in order; `None` where one was withdrawn.
    ops: VecDeque<Option<KubeOp>>,
    /// Absolute position of `ops[0]`.
    base: u64,
    /// Where the waiting replaceable write for an object is.
    waiting: HashMap<Supersedes, u64>,
    events: usize,
}

impl Slots {
    fn slot(&mut self, position: u64) -> Option<&mut Option<KubeOp>> {
        let index = usize::try_from(position.checked_sub(self.base)?).ok()?;
        self.ops.get_mut(index)
    }
}

/// A shard's queue: many producers (the fleet), one consumer (the shard's worker).
#[derive(Debug)]
pub struct WriteQueue {
    slots: Mutex<Slots>,
    ready: Notify,
    metrics: Arc<Metrics>,
}

impl WriteQueue {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            ready: Notify::new(),
            metrics,
        }
    }

    /// Queues a write (or replaces the waiting one for the same object).
    pub fn push(&self, op: KubeOp) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = supersedes(&op);
        if let Some(key) = &key {
            if let Some(position) = s.waiting.get(key).copied() {
                if let Some(slot) = s.slot(position) {
                    *slot = Some(op);
                    drop(s);
                    self.metrics.write_skipped("superseded");
                    return;
                }
            }
        }
        match &op {
            KubeOp::RecordEvent { .. } if s.events >= MAX_QUEUED_EVENTS => {
                drop(s);
                self.metrics.write_skipped("event_queue_full");
                return;
            }
            KubeOp::RecordEvent { .. } => s.events += 1,
            // the upsert writes the node status too: a waiting status patch is older
            KubeOp::UpsertNode { device, .. } => {
                if let Some(position) = s.waiting.remove(&Supersedes::NodeStatus(device.clone())) {
                    if let Some(slot) = s.slot(position) {
                        *slot = None;
                        self.metrics.write_skipped("superseded");
                        self.metrics.kubernetes_writes_queued.dec();
                    }
                }
            }
            _ => {}
        }
        let position = s.base + s.ops.len() as u64;
        if let Some(key) = key {
            s.waiting.insert(key, position);
        }
        s.ops.push_back(Some(op));
        drop(s);
        self.metrics.kubernetes_writes_queued.inc();
        self.ready.notify_one();
    }

    /// The next write, if any.
    pub fn try_pop(&self) -> Option<KubeOp> {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(front) = s.ops.pop_front() {
            let position = s.base;
            s.base += 1;
            let Some(op) = front else {
                continue;
            };
            if let Some(key) = supersedes(&op) {
                if s.waiting.get(&key) == Some(&position) {
                    s.waiting.remove(&key);
                }
            }
            if matches!(op, KubeOp::RecordEvent { .. }) {
                s.events = s.events.saturating_sub(1);
            }
            drop(s);
            self.metrics.kubernetes_writes_queued.dec();
            return Some(op);
        }
        None
    }

    /// Waits for the next write.
    pub async fn pop(&self) -> KubeOp {
        loop {
            if let Some(op) = self.try_pop() {
                return op;
            }
            self.ready.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        let s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.ops.iter().filter(|o| o.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
