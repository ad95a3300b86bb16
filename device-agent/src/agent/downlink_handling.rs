//! What the agent does with what the gateway sends, once [`crate::downlink`] decoded it:
//! desired sets saved, then applied and acknowledged ([`UnsavedDesired`] holds them
//! until saved); resync requests answered with the node report and a full status report;
//! log requests served by [`log_stream`] tasks and cancelled on request; exec, attach and
//! port-forward streams handed to [`crate::streams::StreamManager`]; agent update orders
//! and chunks to `agent_update_handling.rs`; image pre-pull sets to
//! `prepull_handling.rs`; a retire order ends the loop, and
//! [`super::run`] wipes the device ([`crate::retirement`]).

use edge_protocol::{DesiredSet, LogErrorCode, LogRequest, RequestId, ResyncRequest};
use rumqttc::Publish;

use super::AgentLoop;
use crate::downlink::{Delivery, Downlink};
use crate::log_stream;
use crate::mqtt_session::SessionEvent;
use crate::pod_lifecycle::{Effect, Input, LogTargetError};
use crate::systemd_notify;

/// Whether a received message may be acknowledged now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    AckNow,
    /// Acknowledged later (a desired set not saved yet).
    Held,
}

impl AgentLoop {
    pub(super) fn on_session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Connected => {
                self.maybe_ready();
                self.agent_update_reconnected();
                self.republish_prepull();
            }
            SessionEvent::Disconnected => {
                self.unsaved.disconnected();
                self.streams.session_lost();
            }
            SessionEvent::Downlink(delivery) => {
                if self.on_delivery(&delivery) == Handled::AckNow {
                    self.session.ack(&delivery.publish);
                }
            }
        }
    }

    fn on_delivery(&mut self, delivery: &Delivery) -> Handled {
        match &delivery.message {
            Err(reason) => reason.log(),
            Ok(Downlink::Desired(set)) => return self.on_desired(set.clone(), &delivery.publish),
            Ok(Downlink::Resync(r)) => self.on_resync(r),
            Ok(Downlink::LogRequest { id, request }) => self.on_log_request(id, request.clone()),
            Ok(Downlink::LogCancel { id }) => {
                if let Some(t) = self.logs.remove(id.as_str()) {
                    t.cancel();
                }
            }
            Ok(Downlink::Retire(order)) => {
                tracing::error!(reason = %order.reason, "the gateway retired this device: wiping it and stopping");
                self.retired = Some(order.reason.clone());
            }
            Ok(Downlink::AgentUpdateOrder(order)) => self.on_agent_update_order(order.clone()),
            Ok(Downlink::AgentUpdateChunk(chunk)) => self.on_agent_update_chunk(chunk.clone()),
            Ok(Downlink::Prepull(set)) => self.on_prepull_set(set.clone()),
            Ok(Downlink::Stream { id, message }) => self.streams.on_message(
                id,
                message.clone(),
                &self.lifecycle,
                self.session.stream_publisher(),
            ),
        }
        Handled::AckNow
    }

    /// A desired set: saved durably, then applied and acknowledged. If saving fails it is
    /// neither applied nor acknowledged; [`AgentLoop::retry_unsaved`] tries again.
    fn on_desired(&mut self, set: DesiredSet, publish: &Publish) -> Handled {
        let current = self.lifecycle.generation();
        let held = self.unsaved.generation();
        if set.generation < current || held.is_some_and(|h| set.generation < h) {
            tracing::warn!(
                received = set.generation,
                current,
                "ignoring an older desired set"
            );
            if held.is_some() {
                // Acknowledged once the newer set is saved, not before.
                self.unsaved.hold_delivery(publish.clone());
                return Handled::Held;
            }
            return Handled::AckNow;
        }
        self.unsaved.hold(set, publish.clone());
        self.retry_unsaved();
        Handled::Held
    }

    /// Saves the held desired set; once saved, applies it and acknowledges its deliveries.
    pub(super) fn retry_unsaved(&mut self) {
        let Some(set) = self.unsaved.set() else {
            return;
        };
        if let Err(e) = self.store.save_desired(set) {
            tracing::error!(error = %e, generation = set.generation,
                "cannot save the desired set; not applying or acknowledging it, retrying \
                 every sync interval (free space or fix permissions in the state directory)");
            systemd_notify::status("cannot save the desired set; see the log");
            return;
        }
        let (Some(set), deliveries) = self.unsaved.saved() else {
            return;
        };
        tracing::info!(
            generation = set.generation,
            pods = set.pods.len(),
            "applying desired set"
        );
        let _ = self.generation_tx.send(set.generation);
        let effects = self.lifecycle.handle(Input::Desired(set));
        let reported = effects.iter().any(|e| matches!(e, Effect::Report(_)));
        let generation = self.lifecycle.generation();
        self.effects.execute(effects, generation);
        if !reported {
            // Tell the gateway which generation is applied even if no pod changed.
            self.effects.queue_status(generation, false, Vec::new());
        }
        for delivery in &deliveries {
            self.session.ack(delivery);
        }
    }

    fn on_resync(&mut self, r: &ResyncRequest) {
        // A gateway that does not know this device yet (its store was lost, or it
        // started while the device stayed connected to an external broker) learns
        // it from the node report; the full status report then follows.
        tracing::info!(reason = %r.reason, "gateway asked for a resync: node report and full status");
        self.session.node_report_changed();
        self.republish_prepull();
        self.effects.queue_status(
            self.lifecycle.generation(),
            true,
            self.lifecycle.full_status(),
        );
    }

    fn on_log_request(&mut self, id: &RequestId, req: LogRequest) {
        self.logs.retain(|_, t| !t.is_cancelled());
        let target = if req.container.is_empty() {
            Err((
                LogErrorCode::BadRequest,
                "a container name is required".to_owned(),
            ))
        } else {
            self.lifecycle
                .log_target(
                    &req.pod_uid,
                    &req.namespace,
                    &req.pod_name,
                    &req.container,
                    req.previous,
                )
                .map_err(|e| match e {
                    LogTargetError::UnknownContainer => (
                        LogErrorCode::NotFound,
                        format!(
                            "container {} of pod {}/{} is not on this device",
                            req.container, req.namespace, req.pod_name
                        ),
                    ),
                    LogTargetError::NoPreviousInstance => (
                        LogErrorCode::NoPreviousInstance,
                        format!(
                            "previous terminated container {:?} in pod {:?} not found",
                            req.container, req.pod_name
                        ),
                    ),
                })
        };
        let token = self.tasks.child_token();
        self.logs.insert(id.to_string(), token.clone());
        let done = token.clone();
        let runtime = self.runtime.clone();
        let client = self.session.client();
        let device = self.config.device_id.clone();
        let id = id.clone();
        tokio::spawn(async move {
            log_stream::stream(runtime, client, device, id, target, req, token).await;
            done.cancel();
        });
    }
}
