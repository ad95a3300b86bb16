//! Events: built the way the kubelet builds them (about pods, as the node's kubelet;
//! about Nodes, as edge-gateway) and recorded through the shard's event correlator
//! (`event_correlator.rs`), which folds repeats into one Event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::event_reason::{EventReason, EventType, event_type_str};
use super::{Worker, is_status};

/// A unique Event name for an object, as the kubelet makes them: `<object>.<hex time>`.
fn event_name(object: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond().unsigned_abs();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{object}.{nanos:x}{seq:04x}")
}

/// The pod an Event is about, and the node (device) it runs on.
#[derive(Debug, Clone, Copy)]
pub struct EventPod<'a> {
    pub node: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

impl<'a> EventPod<'a> {
    /// An Event of `event_type` about this pod, happened once at `at`.
    pub fn event(
        self,
        event_type: EventType,
        reason: EventReason,
        message: &'a str,
        at: Time,
    ) -> PodEvent<'a> {
        PodEvent {
            pod: self,
            container: None,
            container_list: "containers",
            event_type,
            reason,
            message,
            at,
            count: 1,
        }
    }

    /// A Warning about this pod, happened once at `at`.
    pub fn warning(self, reason: EventReason, message: &'a str, at: Time) -> PodEvent<'a> {
        self.event(EventType::Warning, reason, message, at)
    }
}

/// An Event about a pod, as the kubelet records it; [`PodEvent::build`] makes the
/// Kubernetes object.
#[derive(Debug, Clone)]
pub struct PodEvent<'a> {
    pod: EventPod<'a>,
    container: Option<&'a str>,
    /// The spec list the container is in: `containers`, `initContainers` or
    /// `ephemeralContainers`.
    container_list: &'static str,
    event_type: EventType,
    reason: EventReason,
    message: &'a str,
    at: Time,
    count: i32,
}

impl<'a> PodEvent<'a> {
    /// About one container of the pod (`spec.containers{name}`).
    pub fn container(mut self, container: Option<&'a str>) -> Self {
        self.container = container;
        self
    }

    /// About one ephemeral container of the pod (`spec.ephemeralContainers{name}`).
    pub fn ephemeral_container(mut self, container: &'a str) -> Self {
        self.container = Some(container);
        self.container_list = "ephemeralContainers";
        self
    }

    /// About one init container of the pod (`spec.initContainers{name}`).
    pub fn init_container(mut self, container: &'a str) -> Self {
        self.container = Some(container);
        self.container_list = "initContainers";
        self
    }

    /// How many times it happened (at least 1).
    pub fn count(mut self, count: i32) -> Self {
        self.count = count;
        self
    }

    /// The Event object.
    pub fn build(self) -> Event {
        let PodEvent {
            pod,
            container,
            container_list,
            event_type,
            reason,
            message,
            at,
            count,
        } = self;
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(pod.name)),
                namespace: Some(pod.namespace.to_owned()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(pod.name.to_owned()),
                namespace: Some(pod.namespace.to_owned()),
                uid: Some(pod.uid.to_owned()),
                field_path: container.map(|c| format!("spec.{container_list}{{{c}}}")),
                ..Default::default()
            },
            reason: Some(reason.as_str().to_owned()),
            message: Some(message.to_owned()),
            type_: Some(event_type_str(event_type).to_owned()),
            source: Some(EventSource {
                component: Some("kubelet".to_owned()),
                host: Some(pod.node.to_owned()),
            }),
            first_timestamp: Some(at.clone()),
            last_timestamp: Some(at),
            count: Some(count.max(1)),
            reporting_component: Some("kubelet".to_owned()),
            reporting_instance: Some(pod.node.to_owned()),
            ..Default::default()
        }
    }
}

/// Builds an Event about a Node, reported by the gateway (like the kubelet's node
/// events, in the `default` namespace).
pub fn node_event(
    node: &str,
    event_type: EventType,
    reason: EventReason,
    message: &str,
    at: Time,
) -> Event {
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
        reason: Some(reason.as_str().to_owned()),
        message: Some(message.to_owned()),
        type_: Some(event_type_str(event_type).to_owned()),
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

/// An Event about one of the gateway's own ConfigMaps (an agent rollout, an image
/// pre-pull), named after it; posted directly with [`post_configmap_event`].
pub fn configmap_event(
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    event_type: EventType,
    reason: &str,
    message: &str,
) -> Event {
    let now = Time(jiff::Timestamp::now());
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("ConfigMap".to_owned()),
            api_version: Some("v1".to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: uid.map(str::to_owned),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(event_type_str(event_type).to_owned()),
        source: Some(EventSource {
            component: Some("edge-gateway".to_owned()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some("edge-gateway".to_owned()),
        reporting_instance: Some("edge-gateway".to_owned()),
        ..Default::default()
    }
}

/// Posts an Event of [`configmap_event`]; a failure is logged (an Event is never worth
/// more than a warning).
pub async fn post_configmap_event(client: &kube::Client, event: &Event) {
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(e) = events.create(&PostParams::default(), event).await {
        tracing::warn!(error = %e, reason = ?event.reason, "cannot record an Event on a ConfigMap");
    }
}

impl Worker {
    /// Creates an Event, or counts a repeat of a recent one into it (the kubelet's
    /// correlation).
    pub(super) async fn record_event(&mut self, event: Box<Event>) {
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Instant::now();
        let added = event.count.unwrap_or(1).max(1);
        if let Some(earlier) = self.recent_events.earlier(&event, now) {
            let count = earlier.count.saturating_add(added);
            let patch = json!({"count": count, "lastTimestamp": event.last_timestamp});
            match events
                .patch(
                    &earlier.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    self.recent_events.remember(
                        &Event {
                            metadata: ObjectMeta {
                                name: Some(earlier.name.clone()),
                                namespace: Some(earlier.namespace.clone()),
                                ..Default::default()
                            },
                            ..(*event).clone()
                        },
                        count,
                        now,
                    );
                    return;
                }
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    self.failed("patch_event", &ns, &e);
                    return;
                }
            }
        }
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => self.recent_events.remember(&event, added, now),
            Err(e) => self.failed("create_event", &ns, &e),
        }
    }
}
