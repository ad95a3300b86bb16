//! The latest resource usage samples of each device (`up/stats`), kept apart from the
//! fleet's state and read by the kubelet API's `/stats/summary` and `/metrics/resource`.
//!
//! Why not in [`crate::fleet::FleetState`]: samples decide nothing (no Kubernetes write,
//! no MQTT message), arrive every 15 s from every device (about 670 a second for 10,000
//! devices) and are only read per scrape; sending them through the runner's one queue
//! would delay the inputs that do decide things. So the [`crate::fleet::Fleet`] handle
//! files them here on arrival, after checking with the device directory that the
//! device's Node is the gateway's; the runner stays the only owner of the fleet's state,
//! and this store holds no more than two samples per known device.
//!
//! | file | what is there |
//! |---|---|
//! | `summary.rs` | the kubelet's Summary API (`/stats/summary`) JSON (pure) |
//! | `resource_metrics.rs` | the kubelet's `/metrics/resource` Prometheus text (pure) |

pub mod resource_metrics;
pub mod summary;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_protocol::{DeviceId, NodeStats};

/// The interval assumed until a device has sent two samples (the agent's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// A sample older than this many intervals is stale (as is any sample of an offline device).
pub const STALE_AFTER_INTERVALS: u32 = 3;
/// Most devices the store keeps samples for (a guard: the fleet admits far fewer).
pub const MAX_DEVICES: usize = 200_000;
/// How often entries of devices the fleet forgot are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A sample and when the gateway received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub stats: Arc<NodeStats>,
    pub at: Instant,
}

/// The last two samples of a device: rates (`usageNanoCores`) need both.
#[derive(Debug, Clone)]
pub struct DeviceSamples {
    pub latest: Received,
    pub previous: Option<Received>,
}

impl DeviceSamples {
    /// The device's sampling interval as its last two samples show it (device clock),
    /// else [`DEFAULT_INTERVAL`]; kept within 1 s .. 1 h.
    pub fn interval(&self) -> Duration {
        let measured = self.previous.as_ref().and_then(|p| {
            let ms = self
                .latest
                .stats
                .sampled_at
                .checked_sub(p.stats.sampled_at)?;
            (ms > 0).then(|| Duration::from_millis(ms))
        });
        measured
            .unwrap_or(DEFAULT_INTERVAL)
            .clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }

    /// Whether the latest sample may be served at `now`: the device is online and the
    /// sample is younger than [`STALE_AFTER_INTERVALS`] intervals.
    pub fn is_fresh(&self, online: bool, now: Instant) -> bool {
        online
            && now.saturating_duration_since(self.latest.at)
                <= self.interval() * STALE_AFTER_INTERVALS
    }
}

/// Samples by device; bounded by [`MAX_DEVICES`] and pruned of devices the fleet forgot.
#[derive(Debug)]
pub struct UsageStore {
    devices: Mutex<HashMap<DeviceId, DeviceSamples>>,
    last_prune: Mutex<Instant>,
}

impl Default for UsageStore {
    fn default() -> Self {
        Self {
            devices: Mutex::new(HashMap::new()),
            last_prune: Mutex::new(Instant::now()),
        }
    }
}

impl UsageStore {
    fn devices(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, DeviceSamples>> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files a sample of a device the fleet knows. A sample whose device clock is not
    /// after the latest one replaces it without becoming a rate base (a restarted
    /// device with a clock set back). Returns false when the store is full.
    pub fn record(&self, device: &DeviceId, stats: NodeStats, now: Instant) -> bool {
        let received = Received {
            stats: Arc::new(stats),
            at: now,
        };
        let mut devices = self.devices();
        let full = devices.len() >= MAX_DEVICES;
        match devices.get_mut(device) {
            Some(entry) => {
                let previous = std::mem::replace(&mut entry.latest, received);
                entry.previous =
                    (previous.stats.sampled_at < entry.latest.stats.sampled_at).then_some(previous);
                true
            }
            None if full => false,
            None => {
                devices.insert(
                    device.clone(),
                    DeviceSamples {
                        latest: received,
                        previous: None,
                    },
                );
                true
            }
        }
    }

    /// The samples of `device`, stale or not.
    pub fn get(&self, device: &DeviceId) -> Option<DeviceSamples> {
        self.devices().get(device).cloned()
    }

    /// Drops the devices `known` says no longer exist, at most once a minute; returns
    /// the dropped ones.
    pub fn prune(&self, known: impl Fn(&DeviceId) -> bool, now: Instant) -> Vec<DeviceId> {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|p| p.into_inner());
            if now.saturating_duration_since(*last) < PRUNE_EVERY {
                return Vec::new();
            }
            *last = now;
        }
        let mut dropped = Vec::new();
        self.devices().retain(|d, _| {
            let keep = known(d);
            if !keep {
                dropped.push(d.clone());
            }
            keep
        });
        dropped
    }

    pub fn len(&self) -> usize {
        self.devices().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Core-nanoseconds per second between two cumulative readings `elapsed_ms` apart (a
/// rate of CPU use in nanocores); `None` when the counter went back (a restart) or no
/// time passed.
pub fn nano_cores(previous: u64, latest: u64, elapsed_ms: u64) -> Option<u64> {
    let used = latest.checked_sub(previous)?;
    if elapsed_ms == 0 {
        return None;
    }
    u64::try_from(u128::from(used) * 1000 / u128::from(elapsed_ms)).ok()
}

#[cfg(test)]
mod tests;
