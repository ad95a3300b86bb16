//! A desired set the agent received but could not save (disk full, read-only or broken
//! state directory), with the MQTT deliveries to acknowledge once it is saved.
//!
//! The agent acknowledges a desired set only after it is on disk (the gateway counts an
//! acknowledged set as the device's to keep through reboots). Until then the set is not
//! applied, saving is retried on every sync tick, and a newer set replaces an older one.
//! Deliveries are forgotten when the connection drops: a PUBACK belongs to the
//! connection that carried the message, and the agent's resync on the next connect
//! brings the set again.

use edge_protocol::DesiredSet;
use rumqttc::Publish;

#[derive(Debug, Default)]
pub struct UnsavedDesired {
    pending: Option<DesiredSet>,
    deliveries: Vec<Publish>,
}

impl UnsavedDesired {
    /// Holds `set` (unless an equal or newer one is held) and its delivery.
    pub fn hold(&mut self, set: DesiredSet, delivery: Publish) {
        match &self.pending {
            Some(held) if held.generation > set.generation => {}
            _ => self.pending = Some(set),
        }
        self.deliveries.push(delivery);
    }

    /// Holds a delivery to acknowledge together with the held set (an older set that
    /// arrived meanwhile: nothing to save, but its PUBACK must not precede the save).
    pub fn hold_delivery(&mut self, delivery: Publish) {
        self.deliveries.push(delivery);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_none()
    }

    pub fn generation(&self) -> Option<u64> {
        self.pending.as_ref().map(|s| s.generation)
    }

    /// The held set, to try saving again.
    pub fn set(&self) -> Option<&DesiredSet> {
        self.pending.as_ref()
    }

    /// The set was saved: returns it and the deliveries to acknowledge now.
    pub fn saved(&mut self) -> (Option<DesiredSet>, Vec<Publish>) {
        (self.pending.take(), std::mem::take(&mut self.deliveries))
    }

    /// The connection dropped: the deliveries can no longer be acknowledged.
    pub fn disconnected(&mut self) {
        self.deliveries.clear();
    }
}

#[cfg(test)]
mod tests;
