//! Devices the fleet does not know that send messages anyway: counted, and asked (at
//! most every [`INTRODUCTION_INTERVAL`]) to introduce themselves.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edge_protocol::DeviceId;

use super::Outgoing;
use super::effect::{Effects, FleetEffect};
use super::input::Now;
use crate::hostile_input::RejectReason;

/// How often an unknown device is asked, at most, to send its node report again.
pub const INTRODUCTION_INTERVAL: Duration = Duration::from_secs(30);
/// Bound on remembered unknown ids, so a client inventing ids cannot grow memory.
pub const MAX_REMEMBERED_INTRODUCTIONS: usize = 100_000;

/// When each unknown device was last asked to introduce itself.
#[derive(Debug, Default)]
pub struct Introductions {
    asked: HashMap<DeviceId, Instant>,
}

impl Introductions {
    /// A message from a device that has not said hello (yet): common right after the
    /// gateway or the device starts (a heartbeat can overtake the hello), so counted and
    /// logged at debug level only.
    ///
    /// A connected device the gateway does not know (its store was lost, or it started
    /// while devices stayed connected to an external broker) is asked, at most every
    /// [`INTRODUCTION_INTERVAL`], for a resync: the agent answers with its node report
    /// and a full status report. `admitted`: whether the device may join at all (asked
    /// only when it would be asked to introduce itself).
    pub fn unknown_device(
        &mut self,
        device: &DeviceId,
        admitted: impl FnOnce() -> bool,
        now: Now,
        out: &mut Effects,
    ) {
        out.push(FleetEffect::CountRejected(RejectReason::UnknownDevice));
        let now = now.at;
        if self
            .asked
            .get(device)
            .is_some_and(|t| now.duration_since(*t) < INTRODUCTION_INTERVAL)
        {
            return;
        }
        if self.asked.len() >= MAX_REMEMBERED_INTRODUCTIONS {
            self.asked.clear();
        }
        self.asked.insert(device.clone(), now);
        if !admitted() {
            return;
        }
        tracing::debug!(%device, "message from a device that has not said hello; asking it to introduce itself");
        out.push(FleetEffect::Mqtt(Outgoing::StatusResync {
            device: device.clone(),
            reason: "unknown device: send your node report".to_owned(),
        }));
    }
}
