//! Prometheus metrics (prometheus-client), served on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub devices_total: Gauge,
    pub devices_online: Gauge,
    pub pods_by_phase: Family<Labels, Gauge>,
    pub mqtt_messages_in: Family<Labels, Counter>,
    pub mqtt_messages_out: Family<Labels, Counter>,
    pub rejected_messages: Family<Labels, Counter>,
    pub api_errors: Family<Labels, Counter>,
    pub desired_to_running_seconds: Histogram,
    pub kubernetes_writes_queued: Gauge,
    pub kubernetes_writes_skipped: Family<Labels, Counter>,
    pub autonomy_admissions: Family<Labels, Counter>,
    pub devices_offline_within_budget: Gauge,
    pub devices_offline_over_budget: Gauge,
    /// The agents' own counters by device, as last reported on `up/stats`.
    pub agent_mqtt_reconnects: Family<Labels, Gauge>,
    pub agent_uplink_queue_depth: Family<Labels, Gauge>,
    pub agent_reconcile_errors: Family<Labels, Gauge>,
    pub agent_open_streams: Family<Labels, Gauge>,
    pub streams_open: Family<Labels, Gauge>,
    pub streams_ended: Family<Labels, Counter>,
    /// Retired devices: `retired` (forgotten, Node/Lease/pods deleted), `order_sent`
    /// (told to wipe itself), `refused` (a retired device came back).
    pub retirements: Family<Labels, Counter>,
    /// Sharded gateways: membership, owned devices, fencing.
    pub shard: crate::sharding::shard_metrics::ShardMetrics,
    /// The embedded broker's measured limit and whether the fleet is past it.
    pub embedded_broker: crate::embedded_broker::capacity::CapacityMetrics,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("edge_gateway");
        let devices_total = Gauge::default();
        let devices_online = Gauge::default();
        let pods_by_phase = Family::<Labels, Gauge>::default();
        let mqtt_messages_in = Family::<Labels, Counter>::default();
        let mqtt_messages_out = Family::<Labels, Counter>::default();
        let rejected_messages = Family::<Labels, Counter>::default();
        let api_errors = Family::<Labels, Counter>::default();
        let retirements = Family::<Labels, Counter>::default();
        registry.register(
            "retirements",
            "Retirement steps by event: retired (forgotten; Node, Lease and pods deleted), order_sent (told to wipe itself and stop), refused (a retired device came back)",
            retirements.clone(),
        );
        let desired_to_running_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let kubernetes_writes_queued = Gauge::default();
        let kubernetes_writes_skipped = Family::<Labels, Counter>::default();
        let autonomy_admissions = Family::<Labels, Counter>::default();
        let devices_offline_within_budget = Gauge::default();
        let devices_offline_over_budget = Gauge::default();
        registry.register(
            "devices_offline_within_autonomy_budget",
            "Device Nodes tainted unreachable/not-ready whose autonomy budget is not used up: their pods stay",
            devices_offline_within_budget.clone(),
        );
        registry.register(
            "devices_offline_over_autonomy_budget",
            "Device Nodes offline longer than their autonomy budget: Kubernetes moves their pods",
            devices_offline_over_budget.clone(),
        );
        registry.register(
            "autonomy_admissions",
            "Pod admissions the autonomy webhook reviewed, by decision (mutated, keeps_own, opted_out, not_for_devices, unreadable)",
            autonomy_admissions.clone(),
        );
        let agent_mqtt_reconnects = Family::<Labels, Gauge>::default();
        let agent_uplink_queue_depth = Family::<Labels, Gauge>::default();
        let agent_reconcile_errors = Family::<Labels, Gauge>::default();
        let agent_open_streams = Family::<Labels, Gauge>::default();
        registry.register(
            "agent_mqtt_reconnects",
            "Times the device's agent reconnected to the broker since it started, as last reported (resets when the agent restarts)",
            agent_mqtt_reconnects.clone(),
        );
        registry.register(
            "agent_uplink_queue_depth",
            "Messages waiting in the device agent's uplink queue, as last reported",
            agent_uplink_queue_depth.clone(),
        );
        registry.register(
            "agent_reconcile_errors",
            "Failed reconcile steps of the device's agent since it started, as last reported (resets when the agent restarts)",
            agent_reconcile_errors.clone(),
        );
        registry.register(
            "agent_open_streams",
            "Interactive streams open on the device's agent, as last reported",
            agent_open_streams.clone(),
        );
        let streams_open = Family::<Labels, Gauge>::default();
        let streams_ended = Family::<Labels, Counter>::default();
        registry.register(
            "streams_open",
            "Exec, attach and port-forward streams to devices open now, by kind",
            streams_open.clone(),
        );
        registry.register(
            "streams_ended",
            "Exec, attach and port-forward streams ended, by kind and reason",
            streams_ended.clone(),
        );
        registry.register(
            "kubernetes_writes_queued",
            "Kubernetes writes waiting in the gateway's queues",
            kubernetes_writes_queued.clone(),
        );
        registry.register(
            "kubernetes_writes_skipped",
            "Kubernetes writes not made: superseded (a newer lease, node or pod status replaced a queued one), event_queue_full, or not_owned_or_fenced (a sharded replica's device handed over, or its Lease too old)",
            kubernetes_writes_skipped.clone(),
        );
        registry.register(
            "devices",
            "Devices known to the gateway",
            devices_total.clone(),
        );
        registry.register(
            "devices_online",
            "Devices online (state online and heartbeat within --device-timeout)",
            devices_online.clone(),
        );
        registry.register(
            "pods",
            "Pods on the gateway's nodes by phase, as last reported",
            pods_by_phase.clone(),
        );
        registry.register(
            "mqtt_messages_received",
            "MQTT messages received from devices, by kind",
            mqtt_messages_in.clone(),
        );
        registry.register(
            "mqtt_messages_sent",
            "MQTT messages sent to devices, by kind",
            mqtt_messages_out.clone(),
        );
        registry.register(
            "rejected_messages",
            "Malformed, oversized, wrong-version, spoofed or unexpected messages dropped, by reason",
            rejected_messages.clone(),
        );
        registry.register(
            "kubernetes_api_errors",
            "Failed Kubernetes API calls, by operation",
            api_errors.clone(),
        );
        registry.register(
            "desired_to_running_seconds",
            "Time from a pod entering a device's desired set to the device reporting it Running",
            desired_to_running_seconds.clone(),
        );
        let shard = crate::sharding::shard_metrics::ShardMetrics::default();
        shard.register(&mut registry);
        let embedded_broker = crate::embedded_broker::capacity::CapacityMetrics::default();
        embedded_broker.register(&mut registry);
        Self {
            registry,
            shard,
            embedded_broker,
            devices_total,
            devices_online,
            pods_by_phase,
            mqtt_messages_in,
            mqtt_messages_out,
            rejected_messages,
            api_errors,
            desired_to_running_seconds,
            kubernetes_writes_queued,
            kubernetes_writes_skipped,
            autonomy_admissions,
            devices_offline_within_budget,
            devices_offline_over_budget,
            agent_mqtt_reconnects,
            agent_uplink_queue_depth,
            agent_reconcile_errors,
            agent_open_streams,
            streams_open,
            streams_ended,
            retirements,
        }
    }

    /// Exports a device agent's counters (one series per device and counter).
    pub fn agent_counters(&self, device: &str, counters: &edge_protocol::AgentCounters) {
        let l = labels(&[("device", device)]);
        let set = |f: &Family<Labels, Gauge>, v: u64| {
            f.get_or_create(&l)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.agent_mqtt_reconnects, counters.mqtt_reconnects);
        set(&self.agent_uplink_queue_depth, counters.uplink_queue_depth);
        set(&self.agent_reconcile_errors, counters.reconcile_errors);
        set(&self.agent_open_streams, counters.open_streams);
    }

    /// Drops the series of a device the fleet forgot.
    pub fn forget_agent(&self, device: &str) {
        let l = labels(&[("device", device)]);
        for f in [
            &self.agent_mqtt_reconnects,
            &self.agent_uplink_queue_depth,
            &self.agent_reconcile_errors,
            &self.agent_open_streams,
        ] {
            f.remove(&l);
        }
    }

    pub fn autonomy_admission(&self, decision: &str) {
        self.autonomy_admissions
            .get_or_create(&labels(&[("decision", decision)]))
            .inc();
    }

    pub fn write_skipped(&self, reason: &str) {
        self.kubernetes_writes_skipped
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// A stream to a device of `kind` opened.
    pub fn stream_opened(&self, kind: &str) {
        self.streams_open
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }

    /// A stream of `kind` ended for `reason`.
    pub fn stream_ended(&self, kind: &str, reason: &str) {
        self.streams_open
            .get_or_create(&labels(&[("kind", kind)]))
            .dec();
        self.streams_ended
            .get_or_create(&labels(&[("kind", kind), ("reason", reason)]))
            .inc();
    }

    pub fn message_in(&self, kind: &str) {
        self.mqtt_messages_in
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }
    pub fn message_out(&self, kind: &str) {
        self.mqtt_messages_out
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }
    pub fn retirement(&self, event: &str) {
        self.retirements
            .get_or_create(&labels(&[("event", event)]))
            .inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected_messages
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }
    pub fn api_error(&self, operation: &str) {
        self.api_errors
            .get_or_create(&labels(&[("operation", operation)]))
            .inc();
    }
    /// Moves one pod between phases (`None` = not counted before / any more).
    pub fn pod_phase_changed(&self, from: Option<&str>, to: Option<&str>) {
        if from == to {
            return;
        }
        if let Some(f) = from {
            self.pods_by_phase
                .get_or_create(&labels(&[("phase", f)]))
                .dec();
        }
        if let Some(t) = to {
            self.pods_by_phase
                .get_or_create(&labels(&[("phase", t)]))
                .inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests;
