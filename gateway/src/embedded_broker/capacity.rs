//! The embedded broker's measured limit: a warning (and a metric) when more devices are
//! online on it than it was measured to carry through a gateway restart.
//!
//! Why there is a limit: rumqttd 0.20 runs every client connection of a listener on one
//! single-threaded runtime, and registers each CONNECT with its router thread by a
//! blocking channel round trip (`LinkBuilder::build`: a blocking `send` into the router's
//! 1,000-slot queue, then a blocking `recv` of the router's answer) from inside that
//! runtime. While the router is busy (every device's publishes also go through it) no
//! other connection of the listener is read or written; CONNACKs come later than
//! clients wait, clients connect again, rumqttd drops the older connection ("Duplicate
//! client_id") and the router has more to do. docs/benchmarks.md has the figures.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// `edge_gateway_embedded_broker_device_limit` and `..._over_limit` (0 or 1).
#[derive(Debug, Default)]
pub struct CapacityMetrics {
    pub device_limit: Gauge,
    pub over_limit: Gauge,
}

impl CapacityMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "embedded_broker_device_limit",
            "Devices online above which the embedded broker is past its measured limit (--embedded-broker-device-limit; 0: no warning)",
            self.device_limit.clone(),
        );
        registry.register(
            "embedded_broker_over_limit",
            "1 while more devices are online on the embedded broker than its measured limit",
            self.over_limit.clone(),
        );
    }
}

/// Devices online on the embedded broker above which the gateway warns: half of the
/// 10,000 that did not all come back within 300 s after a gateway SIGKILL (9,055 did),
/// and below the about 6,500 at which CONNECTs stalled at 500 connects/s.
pub const MEASURED_DEVICE_LIMIT: u64 = 5_000;
// Below where CONNECTs stalled (about 6,500 at 500 connects/s).
const _: () = assert!(MEASURED_DEVICE_LIMIT < 6_500);

/// How often the number of online devices is looked at.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// A crossing of the limit, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityEvent {
    /// More devices online than the limit (reported once per crossing).
    Over { online: u64, limit: u64 },
    /// Back at or below 90 % of the limit.
    BackUnder { online: u64, limit: u64 },
}

/// Pure state: whether the fleet is over the limit, with a 10 % band so that a fleet
/// hovering at the limit is not reported on every check. A limit of 0 turns it off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityWatch {
    limit: u64,
    over: bool,
}

impl CapacityWatch {
    pub fn new(limit: u64) -> Self {
        Self { limit, over: false }
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The number of devices online now; an event when that crosses the limit.
    pub fn observe(&mut self, online: u64) -> Option<CapacityEvent> {
        let limit = self.limit;
        if limit == 0 {
            return None;
        }
        if !self.over && online > limit {
            self.over = true;
            return Some(CapacityEvent::Over { online, limit });
        }
        if self.over && online.saturating_mul(10) <= limit.saturating_mul(9) {
            self.over = false;
            return Some(CapacityEvent::BackUnder { online, limit });
        }
        None
    }
}

/// Checks `devices_online` every [`CHECK_INTERVAL`] until cancelled: logs each crossing
/// and sets `edge_gateway_embedded_broker_over_limit`.
pub async fn watch(metrics: Arc<Metrics>, limit: u64, token: CancellationToken) {
    let mut state = CapacityWatch::new(limit);
    metrics
        .embedded_broker
        .device_limit
        .set(i64::try_from(limit).unwrap_or(i64::MAX));
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        let online = u64::try_from(metrics.devices_online.get()).unwrap_or(0);
        match state.observe(online) {
            Some(CapacityEvent::Over { online, limit }) => warn!(
                online,
                limit,
                "more devices are online on the embedded MQTT broker than it was measured to carry: \
                 rumqttd handles every CONNECT on one thread, and after a gateway restart a fleet \
                 this large may not all reconnect (10,000 devices: 9,055 back within 300 s). Use \
                 Mosquitto or a broker cluster (--broker-url; docs/brokers.md, docs/deploy.md)"
            ),
            Some(CapacityEvent::BackUnder { online, limit }) => {
                info!(
                    online,
                    limit,
                    "devices online on the embedded MQTT broker back under its measured limit"
                );
            }
            None => {}
        }
        metrics
            .embedded_broker
            .over_limit
            .set(i64::from(state.is_over()));
    }
}

#[cfg(test)]
mod tests;
