//! The device directory: the few facts about each device that other tasks read
//! synchronously and often (is its Node ours, is it online, its node context for the
//! downward API), published by the runner after every input that can change them.
//!
//! Why a published copy and not a query through the runner: the pod watch asks for
//! every pod it processes and the MQTT-facing tests ask from plain functions; a read of
//! this map is a short read lock, with no round trip through the runner's queue. The
//! map holds only these small facts, so keeping it current costs little; pods and log
//! targets (bigger, and read only per kubelet API request) are asked from the runner.

use std::collections::HashMap;
use std::sync::RwLock;

use edge_protocol::DeviceId;

use super::state::FleetState;
use crate::translation::NodeContext;

/// What the directory knows about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The device's Node is the gateway's: its pods are delivered.
    pub owned: bool,
    pub online: bool,
    pub node: NodeContext,
}

/// Devices by id; written only by the runner.
#[derive(Debug, Default)]
pub struct DeviceDirectory {
    devices: RwLock<HashMap<DeviceId, DeviceFacts>>,
}

fn facts(state: &FleetState, device: &DeviceId) -> DeviceFacts {
    DeviceFacts {
        owned: state.is_owned(device),
        online: state.is_online(device),
        node: state.node_context(device),
    }
}

impl DeviceDirectory {
    /// Publishes what `state` says about `device` now (removes it when gone).
    pub(super) fn refresh(&self, state: &FleetState, device: &DeviceId) {
        let known = state.knows(device);
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        if known {
            let now = facts(state, device);
            if devices.get(device) != Some(&now) {
                devices.insert(device.clone(), now);
            }
        } else {
            devices.remove(device);
        }
    }

    /// Publishes every device of `state` (after a tick, which may change any of them).
    pub(super) fn rebuild(&self, state: &FleetState) {
        let all: HashMap<DeviceId, DeviceFacts> = state
            .device_ids()
            .map(|d| (d.clone(), facts(state, d)))
            .collect();
        *self.devices.write().unwrap_or_else(|p| p.into_inner()) = all;
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<DeviceId, DeviceFacts>) -> T) -> T {
        f(&self.devices.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The facts about `device`, if the fleet knows it.
    pub fn get(&self, device: &DeviceId) -> Option<DeviceFacts> {
        self.read(|d| d.get(device).cloned())
    }

    pub fn known_devices(&self) -> Vec<DeviceId> {
        self.read(|d| d.keys().cloned().collect())
    }
}
