//! Events the gateway writes: built the way the kubelet builds them (about pods, as the
//! node's kubelet; about Nodes, as edge-gateway), and aggregated like the kubelet's event
//! correlator aggregates repeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// A unique Event name for an object, as the kubelet makes them: `<object>.<hex time>`.
fn event_name(object: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond().unsigned_abs();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{object}.{nanos:x}{seq:04x}")
}

/// Builds an Event the way the kubelet records it about a pod.
#[allow(clippy::too_many_arguments)]
pub fn pod_event(
    node: &str,
    namespace: &str,
    pod_name: &str,
    pod_uid: &str,
    container: Option<&str>,
    event_type: &str,
    reason: &str,
    message: &str,
    at: Time,
    count: i32,
) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(pod_name)),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: Some(pod_name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: Some(pod_uid.to_owned()),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(event_type.to_owned()),
        source: Some(EventSource {
            component: Some("kubelet".to_owned()),
            host: Some(node.to_owned()),
        }),
        first_timestamp: Some(at.clone()),
        last_timestamp: Some(at),
        count: Some(count.max(1)),
        reporting_component: Some("kubelet".to_owned()),
        reporting_instance: Some(node.to_owned()),
        ..Default::default()
    }
}

/// Builds an Event about a Node, reported by the gateway (like the kubelet's node
/// events, in the `default` namespace).
pub fn node_event(node: &str, event_type: &str, reason: &str, message: &str, at: Time) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(node)),
            namespace: Some("default".to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Node".to_owned()),
            name: Some(node.to_owned()),
            uid: Some(node.to_owned()),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(event_type.to_owned()),
        source: Some(EventSource {
            component: Some("edge-gateway".to_owned()),
            host: None,
        }),
        first_timestamp: Some(at.clone()),
        last_timestamp: Some(at),
        count: Some(1),
        reporting_component: Some("edge-gateway".to_owned()),
        reporting_instance: Some(node.to_owned()),
        ..Default::default()
    }
}

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
