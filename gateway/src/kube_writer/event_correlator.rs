//! Aggregation of repeated Events, as the kubelet's event correlator does it: a repeat
//! within [`EVENT_AGGREGATION_WINDOW`] updates the earlier Event's count and
//! lastTimestamp instead of creating a new Event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;

/// Repeats of an event (same object, container, type, reason and message) within
/// [`EVENT_AGGREGATION_WINDOW`] update the existing Event's count and lastTimestamp,
/// as the kubelet's event correlator does, instead of creating a new Event each time.
pub const EVENT_AGGREGATION_WINDOW: Duration = Duration::from_secs(600);
const EVENT_CACHE_LIMIT: usize = 4096;

type EventKey = (String, Option<String>, String, String, String);

#[derive(Debug, Default)]
pub(super) struct EventCorrelator {
    recent: HashMap<EventKey, RecentEvent>,
}

#[derive(Debug, Clone)]
pub(super) struct RecentEvent {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) count: i32,
    at: Instant,
}

fn event_key(e: &Event) -> EventKey {
    (
        e.involved_object.uid.clone().unwrap_or_default(),
        e.involved_object.field_path.clone(),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        e.message.clone().unwrap_or_default(),
    )
}

impl EventCorrelator {
    /// The earlier Event this one repeats, if any (still within the window).
    pub(super) fn earlier(&mut self, e: &Event, now: Instant) -> Option<RecentEvent> {
        let key = event_key(e);
        match self.recent.get(&key) {
            Some(r) if now.saturating_duration_since(r.at) < EVENT_AGGREGATION_WINDOW => {
                Some(r.clone())
            }
            Some(_) => {
                self.recent.remove(&key);
                None
            }
            None => None,
        }
    }

    pub(super) fn remember(&mut self, e: &Event, count: i32, now: Instant) {
        if self.recent.len() >= EVENT_CACHE_LIMIT {
            self.recent
                .retain(|_, r| now.saturating_duration_since(r.at) < EVENT_AGGREGATION_WINDOW);
            if self.recent.len() >= EVENT_CACHE_LIMIT {
                self.recent.clear();
            }
        }
        self.recent.insert(
            event_key(e),
            RecentEvent {
                namespace: e.metadata.namespace.clone().unwrap_or_default(),
                name: e.metadata.name.clone().unwrap_or_default(),
                count,
                at: now,
            },
        );
    }
}
