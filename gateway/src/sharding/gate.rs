//! [`ShardGate`]: what the rest of the gateway asks per device. The Kubernetes writers ask
//! whether a write about a device may be made *now* (owned, and the renew deadline not
//! passed: checked on the clock at each write, so a replica cut off from the API server
//! stops by itself, whatever its renew loop is doing); the MQTT link asks which topics to
//! subscribe and whether a device's message is for this replica, and reports every device
//! it hears say hello or state its presence. Unsharded, every device is ours.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use edge_protocol::DeviceId;
use edge_protocol::topic::{TOPIC_ROOT, TOPIC_VERSION, gateway_subscription};
use tokio::sync::mpsc;

/// The channels of a device this replica subscribes to once it owns the device (hello
/// and state come through the fleet-wide filters of [`discovery_filters`]).
const OWNED_CHANNELS: &[&str] = &[
    "heartbeat",
    "status",
    "events",
    "resync",
    "stats",
    "logtail",
    "logs/+",
    "stream/+",
    "agent-update",
];

/// The filters every replica subscribes to: `up/hello` and the retained `up/state` of all
/// devices, to hear of devices (one small message per device connection).
pub fn discovery_filters() -> Vec<String> {
    ["hello", "state"]
        .iter()
        .map(|c| format!("{TOPIC_ROOT}/{TOPIC_VERSION}/+/up/{c}"))
        .collect()
}

/// The filters of one owned device.
pub fn device_filters(device: &DeviceId) -> Vec<String> {
    OWNED_CHANNELS
        .iter()
        .map(|c| format!("{TOPIC_ROOT}/{TOPIC_VERSION}/{device}/up/{c}"))
        .collect()
}

#[derive(Debug, Default)]
struct Published {
    /// Kubernetes writes stop at this instant unless the Lease is renewed.
    fence_until: Option<Instant>,
    owned: HashSet<DeviceId>,
}

#[derive(Debug)]
struct Shared {
    published: RwLock<Published>,
    heard: mpsc::UnboundedSender<DeviceId>,
}

/// Cheap to clone; the default is unsharded.
#[derive(Debug, Clone, Default)]
pub struct ShardGate {
    shared: Option<Arc<Shared>>,
}

impl ShardGate {
    /// Every device is ours, every write allowed (one gateway).
    pub fn unsharded() -> Self {
        Self::default()
    }

    /// A replica's gate, owning nothing and fenced until its runner publishes; the
    /// receiver gets the devices heard of.
    pub fn sharded() -> (Self, mpsc::UnboundedReceiver<DeviceId>) {
        let (heard, rx) = mpsc::unbounded_channel();
        let gate = Self {
            shared: Some(Arc::new(Shared {
                published: RwLock::new(Published::default()),
                heard,
            })),
        };
        (gate, rx)
    }

    pub fn is_sharded(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether a Kubernetes write about `device` may be made at `now`.
    pub fn may_write_at(&self, device: &DeviceId, now: Instant) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let p = shared.published.read().unwrap_or_else(|e| e.into_inner());
        p.fence_until.is_some_and(|t| now < t) && p.owned.contains(device)
    }

    /// Whether a Kubernetes write about `device` may be made now.
    pub fn may_write(&self, device: &DeviceId) -> bool {
        self.may_write_at(device, Instant::now())
    }

    /// The instant after which no write may land (a write under way is abandoned then);
    /// `None` unsharded.
    pub fn write_deadline(&self) -> Option<Instant> {
        let shared = self.shared.as_ref()?;
        let p = shared.published.read().unwrap_or_else(|e| e.into_inner());
        Some(p.fence_until.unwrap_or_else(Instant::now))
    }

    /// Whether messages of `device` are this replica's to handle.
    pub fn owns(&self, device: &DeviceId) -> bool {
        match &self.shared {
            None => true,
            Some(shared) => shared
                .published
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .owned
                .contains(device),
        }
    }

    /// A device said hello or stated its presence: the runner decides who owns it.
    pub fn heard(&self, device: &DeviceId) {
        if let Some(shared) = &self.shared {
            let _ = shared.heard.send(device.clone());
        }
    }

    /// Every filter to subscribe after (re)connecting to the broker.
    pub fn subscriptions(&self) -> Vec<String> {
        let Some(shared) = &self.shared else {
            return vec![gateway_subscription()];
        };
        let p = shared.published.read().unwrap_or_else(|e| e.into_inner());
        let mut filters = discovery_filters();
        let mut owned: Vec<&DeviceId> = p.owned.iter().collect();
        owned.sort();
        for d in owned {
            filters.extend(device_filters(d));
        }
        filters
    }

    /// The runner's decision (tests: a stand-in for it): writes allowed until
    /// `fence_until`, these devices owned.
    pub fn publish(&self, fence_until: Option<Instant>, owned: &BTreeSet<DeviceId>) {
        if let Some(shared) = &self.shared {
            let mut p = shared.published.write().unwrap_or_else(|e| e.into_inner());
            p.fence_until = fence_until;
            p.owned = owned.iter().cloned().collect();
        }
    }
}

#[cfg(test)]
mod tests;
