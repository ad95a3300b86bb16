//! The gateway's MQTT connection: one client for the whole fleet, subscribed to every
//! device's `up/#`, moving to the next node of a broker cluster when its node fails. The event loop task only polls, decodes (`device_frame.rs`: a frame
//! becomes a typed [`DeviceFrame`] or a counted rejection) and hands frames to the fleet;
//! publishing happens in the outbox task (publishing from the polling task can deadlock
//! rumqttc).

use std::sync::Arc;
use std::time::Duration;

use edge_protocol::broker_failover::{BrokerFailover, jitter_seed};
use edge_protocol::{DownChannel, MAX_DESIRED_SET_BYTES, Message, Topic};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
use crate::fleet::{Fleet, Outgoing, log_cancel};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;

mod device_frame;

pub use device_frame::{DeviceAgentUpdate, DeviceFrame, DeviceMessage, decode};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Tls(#[from] edge_protocol::broker_tls::BrokerTlsError),
    #[error("mqtts:// needs --broker-ca (the CA that signed the broker's certificate)")]
    MissingCa,
    #[error("no broker address configured")]
    NoBroker,
}

fn tls_config(
    ca: Option<&std::path::Path>,
    client_cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<rustls::ClientConfig, MqttError> {
    let ca = ca.ok_or(MqttError::MissingCa)?;
    Ok(edge_protocol::broker_tls::client_config(
        &edge_protocol::broker_tls::BrokerTlsFiles {
            ca: Some(ca),
            client: client_cert.map(|(cert, key)| (cert.as_path(), key.as_path())),
        },
    )?)
}

/// Largest MQTT packet the gateway's client accepts from the broker. A bigger one would
/// end its connection before it could be acknowledged, and with a persistent session
/// the broker would redeliver it on every reconnect: brokers must forward nothing bigger.
pub const MAX_INCOMING_PACKET_BYTES: usize = 4 * MAX_DESIRED_SET_BYTES;

/// Largest payload a broker may accept (embedded rumqttd's packet limit, Mosquitto's
/// `message_size_limit`): a whole desired set, the largest message the gateway sends,
/// with room to spare. Every device message above the protocol's limits that fits is
/// still delivered to the gateway, which counts and drops it.
pub const BROKER_MAX_PAYLOAD_BYTES: usize = MAX_DESIRED_SET_BYTES + 64 * 1024;

// Payload plus the largest topic (2 + 65,535 bytes), packet id and fixed header.
const _: () = assert!(BROKER_MAX_PAYLOAD_BYTES + 2 + 65_535 + 2 + 5 <= MAX_INCOMING_PACKET_BYTES);

/// Client options for the configured broker (`embedded_port` when embedded).
pub fn options(
    broker: &BrokerConfig,
    client_id: &str,
    embedded_port: Option<u16>,
) -> Result<MqttOptions, MqttError> {
    failover_options(broker, client_id, embedded_port)?
        .into_iter()
        .next()
        .ok_or(MqttError::NoBroker)
}

/// Client options for every node of the configured broker, in the order they are
/// tried: the first node, then the `failover` ones (one entry when embedded).
pub fn failover_options(
    broker: &BrokerConfig,
    client_id: &str,
    embedded_port: Option<u16>,
) -> Result<Vec<MqttOptions>, MqttError> {
    let nodes = match broker {
        BrokerConfig::Embedded { listen, .. } => {
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen.ip().to_string()
            };
            vec![with_limits(MqttOptions::new(
                client_id,
                host,
                embedded_port.unwrap_or(listen.port()),
            ))]
        }
        BrokerConfig::External {
            host,
            port,
            failover,
            tls,
            ca,
            client_cert,
        } => {
            let transport = if *tls {
                let cfg = tls_config(ca.as_deref(), client_cert.as_ref())?;
                Some(Transport::Tls(TlsConfiguration::Rustls(Arc::new(cfg))))
            } else {
                None
            };
            std::iter::once((host, port))
                .chain(failover.iter().map(|(h, p)| (h, p)))
                .map(|(host, port)| {
                    let mut o = MqttOptions::new(client_id, host.clone(), *port);
                    if let Some(t) = &transport {
                        o.set_transport(t.clone());
                    }
                    with_limits(o)
                })
                .collect()
        }
    };
    Ok(nodes)
}

/// The settings every connection of the gateway shares.
fn with_limits(mut opts: MqttOptions) -> MqttOptions {
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(false);
    // Incoming limit above every protocol limit and above what the brokers accept, so an
    // oversized message from a device is decoded, counted and dropped instead of breaking
    // the gateway's connection.
    opts.set_max_packet_size(MAX_INCOMING_PACKET_BYTES, BROKER_MAX_PAYLOAD_BYTES);
    opts.set_inflight(200);
    opts.set_request_channel_capacity(1000);
    opts
}

fn qos(q: edge_protocol::Qos) -> QoS {
    match q {
        edge_protocol::Qos::AtMostOnce => QoS::AtMostOnce,
        edge_protocol::Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

/// Polls the event loop until cancelled: subscribes on every ConnAck, dispatches
/// publishes to the fleet, reconnects with jittered back-off, to the next of `nodes`
/// (the options of every broker node, [`failover_options`]) when there are several.
/// `connected` turns true on ConnAck.
pub async fn run_event_loop(
    mut eventloop: EventLoop,
    nodes: Vec<MqttOptions>,
    client: AsyncClient,
    fleet: Arc<Fleet>,
    connected: watch::Sender<bool>,
    bootstrap: Option<mpsc::Sender<crate::device_enrollment::BootstrapPublish>>,
    token: CancellationToken,
) {
    let mut failover = BrokerFailover::new(
        nodes.len(),
        Duration::from_millis(200),
        Duration::from_secs(10),
    );
    let mut connected_before = false;
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let (host, port) = eventloop.mqtt_options.broker_address();
                info!(
                    broker = %format!("{host}:{port}"),
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                failover.connected();
                if connected_before && !ack.session_present {
                    warn!(
                        "the broker lost the gateway's session: sending again every desired set not yet acknowledged"
                    );
                    fleet.on_broker_session_lost();
                }
                connected_before = true;
                subscribe_device_topics(&client, &fleet, bootstrap.is_some(), Duration::ZERO);
                let _ = connected.send(true);
            }
            Ok(Event::Incoming(Packet::SubAck(ack)))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                // A broker cluster refuses while a node fails over: without the
                // subscription no device message would arrive, so ask again.
                warn!("the broker refused the subscription to the device topics; retrying in 1 s");
                let enroll = bootstrap.is_some();
                subscribe_device_topics(&client, &fleet, enroll, Duration::from_secs(1));
            }
            Ok(Event::Incoming(Packet::Publish(p)))
                if p.topic
                    .starts_with(edge_protocol::enrollment::BOOTSTRAP_TOPIC_ROOT)
                    || (bootstrap.is_some()
                        && edge_protocol::enrollment::parse_renewal_request_topic(&p.topic)
                            .is_some()) =>
            {
                if let Some(tx) = &bootstrap {
                    let publish = crate::device_enrollment::BootstrapPublish {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                    };
                    // full: the enrollment task is behind; the device sends again
                    if tx.try_send(publish).is_err() {
                        warn!(topic = %p.topic, "enrollment is busy: dropping a bootstrap request");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(frame) = accepted(&fleet, &p.topic, &p.payload, p.retain) {
                    // waits while the fleet's intake is full: back-pressure on the broker
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = fleet.queue_device_frame(frame) => {}
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = connected.send(false);
                let (next, wait) = failover.failed(jitter_seed());
                if let Some(opts) = nodes.get(next).filter(|_| nodes.len() > 1) {
                    // rumqttc keeps the unacknowledged publishes and resends them on the
                    // next connection; the session (clean_session false) is the cluster's
                    eventloop.mqtt_options = opts.clone();
                }
                let (host, port) = eventloop.mqtt_options.broker_address();
                warn!(error = %e, retry_in = ?wait, next = %format!("{host}:{port}"), "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

/// Subscribes, after `delay`, to every device's topics, or (a sharded replica) to hello
/// and state of all devices and the rest of its own devices' topics. From another task:
/// the request channel is drained by the event loop's poll().
/// With zero-touch enrollment on (`enroll`), also to the bootstrap request topics.
fn subscribe_device_topics(client: &AsyncClient, fleet: &Fleet, enroll: bool, delay: Duration) {
    let client = client.clone();
    let mut filters = fleet.shard_gate().subscriptions();
    if enroll {
        filters.push(edge_protocol::enrollment::bootstrap_subscription());
    }
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for chunk in filters.chunks(64) {
            let chunk = chunk
                .iter()
                .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
            if let Err(e) = client.subscribe_many(chunk).await {
                warn!(error = %e, "cannot subscribe to device topics");
            }
        }
    });
}

/// Decodes one publish from the broker and hands it to the fleet, or counts and drops it
/// (without the intake bound: for callers that drive the runner themselves, such as
/// tests and the fuzz harness).
pub fn dispatch(fleet: &Fleet, topic: &str, payload: &[u8], retained: bool) {
    if let Some(frame) = accepted(fleet, topic, payload, retained) {
        fleet.on_device_frame(frame);
    }
}

/// Decodes one publish: the frame, counted as received, or None once the rejection is
/// counted and logged.
fn accepted(fleet: &Fleet, topic: &str, payload: &[u8], retained: bool) -> Option<DeviceFrame> {
    match decode(topic, payload, retained) {
        Ok(frame) => {
            let gate = fleet.shard_gate();
            if matches!(
                frame.message,
                DeviceMessage::Hello(_) | DeviceMessage::State { .. }
            ) {
                gate.heard(&frame.device);
            }
            // a sharded replica hears every device's hello and state, and handles its own
            if !gate.owns(&frame.device) {
                return None;
            }
            fleet.metrics().message_in(frame.message.kind().as_str());
            Some(frame)
        }
        Err(rejection) => {
            fleet.reject(&rejection);
            None
        }
    }
}

/// What the outbox needs: the store it flushes before publishing a desired set,
/// readiness it reports the flushes to, and the metrics of sent messages.
#[derive(Debug, Clone)]
pub struct OutboxContext {
    pub store: Store,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

impl From<Arc<Fleet>> for OutboxContext {
    fn from(fleet: Arc<Fleet>) -> Self {
        Self {
            store: fleet.store().clone(),
            health: fleet.health().clone(),
            metrics: fleet.metrics().clone(),
        }
    }
}

/// Most messages taken from the outbox per store flush.
pub const OUTBOX_BATCH: usize = 1024;

/// Desired sets waiting for a successful store flush: the newest set per device, in the
/// order the devices first queued one (a newer set replaces the older, never reorders).
#[derive(Debug, Default)]
struct HeldSets {
    order: std::collections::VecDeque<edge_protocol::DeviceId>,
    sets: std::collections::HashMap<edge_protocol::DeviceId, edge_protocol::DesiredSet>,
}

impl HeldSets {
    fn hold(&mut self, device: edge_protocol::DeviceId, set: edge_protocol::DesiredSet) {
        if self.sets.insert(device.clone(), set).is_none() {
            self.order.push_back(device);
        }
    }

    fn take_all(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::with_capacity(self.order.len());
        for device in self.order.drain(..) {
            if let Some(set) = self.sets.remove(&device) {
                out.push(Outgoing::Desired { device, set });
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Sends what the fleet queues: desired sets once the store is flushed, log requests and
/// cancels and status resync requests at once. While flushes fail (a full disk), desired
/// sets wait (the newest per device), everything else keeps flowing, and readiness says
/// why; flushes are retried every second.
pub async fn run_outbox(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    client: AsyncClient,
    context: impl Into<OutboxContext>,
    token: CancellationToken,
) {
    let ctx = context.into();
    let mut held = HeldSets::default();
    loop {
        let first = if held.is_empty() {
            tokio::select! {
                _ = token.cancelled() => break,
                o = rx.recv() => match o { Some(o) => Some(o), None => break },
            }
        } else {
            // sets are waiting for a flush: retry it within a second even if nothing new comes
            tokio::select! {
                _ = token.cancelled() => break,
                o = rx.recv() => match o { Some(o) => Some(o), None => break },
                _ = tokio::time::sleep(Duration::from_secs(1)) => None,
            }
        };
        let mut batch: Vec<Outgoing> = first.into_iter().collect();
        // take whatever else is queued: one flush covers a whole batch of sets
        while batch.len() < OUTBOX_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        for out in batch {
            match out {
                Outgoing::Desired { device, set } => held.hold(device, set),
                other => publish(&client, &ctx.metrics, other).await,
            }
        }
        if held.is_empty() {
            continue;
        }
        match ctx.store.flush().await {
            Ok(()) => {
                ctx.health.store_ok();
                for out in held.take_all() {
                    publish(&client, &ctx.metrics, out).await;
                }
            }
            Err(e) => {
                warn!(error = %e, "store flush failed; desired sets wait until it works (retrying every second)");
                ctx.health.store_failed(&e.to_string());
            }
        }
    }
}

async fn publish(client: &AsyncClient, metrics: &Metrics, out: Outgoing) {
    let mut binary_stream_data = false;
    let (device, channel, msg) = match out {
        Outgoing::Desired { device, set } => {
            debug!(%device, generation = set.generation, pods = set.pods.len(), "publishing desired set");
            (device, DownChannel::Desired, Message::DesiredSet(set))
        }
        Outgoing::LogRequest {
            device,
            id,
            request,
        } => (device, DownChannel::Logs(id), Message::LogRequest(request)),
        Outgoing::LogCancel { device, id } => (
            device,
            DownChannel::Logs(id),
            Message::LogCancel(log_cancel()),
        ),
        Outgoing::Stream {
            device,
            id,
            message,
            binary_data,
        } => {
            binary_stream_data = binary_data;
            (device, DownChannel::Stream(id), *message)
        }
        Outgoing::AgentUpdate { device, message } => (device, DownChannel::AgentUpdate, *message),
        Outgoing::ImagePrepull { device, set } => {
            (device, DownChannel::Prepull, Message::ImagePrepullSet(*set))
        }
        Outgoing::Retire { device, reason } => (
            device,
            DownChannel::Retire,
            Message::RetireOrder(edge_protocol::RetireOrder { reason }),
        ),
        Outgoing::StatusResync { device, reason } => (
            device,
            DownChannel::Resync,
            Message::ResyncRequest(edge_protocol::ResyncRequest {
                known_generation: 0,
                reason,
            }),
        ),
    };
    let topic = Topic::down(&device, channel);
    let payload = match msg.encode_for_stream(binary_stream_data) {
        Ok(p) => p,
        Err(e) => {
            warn!(%device, error = %e, "cannot encode a message for the device");
            return;
        }
    };
    let kind = msg.kind().as_str();
    match client
        .publish(
            topic.to_string(),
            qos(topic.qos()),
            topic.retained(),
            payload,
        )
        .await
    {
        Ok(()) => metrics.message_out(kind),
        Err(e) => warn!(%device, error = %e, "cannot queue an MQTT publish"),
    }
}

/// Creates the client and event loop. TCP_NODELAY: exec keystrokes and stream credit are
/// small messages that must not wait for Nagle's algorithm (with delayed ACKs, up to
/// 40 ms per hop). A connection attempt waits up to
/// [`CONNACK_TIMEOUT`](edge_protocol::broker_failover::CONNACK_TIMEOUT).
pub fn client(opts: MqttOptions) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    // never give a CONNECT up while a cluster node may still be processing it
    network.set_connection_timeout(edge_protocol::broker_failover::CONNACK_TIMEOUT.as_secs());
    eventloop.set_network_options(network);
    (client, eventloop)
}

#[cfg(test)]
mod tests;
