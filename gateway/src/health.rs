//! Readiness: what `/readyz` answers. The gateway is ready when its store accepts and
//! flushes writes and its MQTT connection is up; otherwise `/readyz` says which of the
//! two is failing (and Kubernetes takes the pod out of its Services and rollouts wait).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared readiness state, set by the fleet (store writes), the outbox (store flushes)
/// and the MQTT link.
#[derive(Debug, Default)]
pub struct Health {
    store_error: Mutex<Option<String>>,
    mqtt_connected: AtomicBool,
}

impl Health {
    /// A store write or flush failed: not ready until a flush succeeds again.
    pub fn store_failed(&self, why: &str) {
        let mut e = self.store_error.lock().unwrap_or_else(|p| p.into_inner());
        *e = Some(why.chars().take(500).collect());
    }

    /// A flush succeeded: everything written so far is durable.
    pub fn store_ok(&self) {
        let mut e = self.store_error.lock().unwrap_or_else(|p| p.into_inner());
        *e = None;
    }

    pub fn store_healthy(&self) -> bool {
        self.store_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    pub fn set_mqtt_connected(&self, connected: bool) {
        self.mqtt_connected.store(connected, Ordering::Relaxed);
    }

    /// What keeps the gateway from being ready; empty when it is ready.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = self
            .store_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            out.push(format!(
                "store: {e} (desired sets are held back until it works; check the volume of --store-dir)"
            ));
        }
        if !self.mqtt_connected.load(Ordering::Relaxed) {
            out.push("mqtt: not connected to the broker".to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests;
