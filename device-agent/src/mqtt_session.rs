//! The MQTT session: one task polls the rumqttc event loop (and only polls, so
//! publishing can never deadlock it), reconnecting with jittered back-off to the next of
//! the configured brokers (the nodes of a cluster); a second task publishes reliable messages one at a time from the outbox
//! ([`UplinkWindow`]) and re-subscribes after every connect without a session and after
//! a refused subscription.
//!
//! The poll task numbers connections (epochs) and tells the uplink task, in event order,
//! which packet id each QoS 1 publish was written with and which packet ids the broker
//! acknowledged, so acknowledgements are matched by epoch and packet id. On a broken
//! connection rumqttc moves unacknowledged and not yet written publishes to its pending
//! queue; the agent uses clean sessions, so the poll task discards them (counting the
//! unwritten ones for the window) and the window sends them again. Events rumqttc read
//! just before the error (a PUBACK that came with the FIN) are handed over as the lost
//! connection's; rumqttc would otherwise return them after the next ConnAck.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use edge_protocol::broker_failover::{BrokerFailover, jitter_seed};
use edge_protocol::{
    DeviceId, DeviceState, Message, NodeReport, ResyncRequest, Topic, UpChannel,
    topic::device_subscription,
};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS, Request,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, BrokerUrl, TlsFiles};
use crate::downlink::Delivery;
use crate::local_store::LocalStore;
use crate::publish_ledger::{PublishLedger, Publisher, StreamPublisher};
use crate::uplink_window::{PriorityMessage, Send, UplinkWindow};
use crate::wall_clock::now_millis;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    TlsFiles(#[from] edge_protocol::broker_tls::BrokerTlsError),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("encoding {0}")]
    Encode(String),
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;

/// What the session tells the agent.
#[derive(Debug)]
pub enum SessionEvent {
    Connected,
    Disconnected,
    /// A frame on one of the device's `down/...` topics, already decoded (acknowledge
    /// it with [`MqttSession::ack`] once handled).
    Downlink(Box<Delivery>),
}

/// Inputs of the uplink task.
#[derive(Debug)]
enum UplinkInput {
    Connected {
        session_present: bool,
    },
    /// The broker refused the subscription to the device's topics a second ago (a
    /// broker cluster failing over, say): subscribe again and ask for a resync.
    SubscriptionRefused,
    /// The connection broke; `unsent` publish requests were dropped unwritten.
    Disconnected {
        unsent: usize,
    },
    /// A QoS 1 publish was written with this packet id on connection `epoch`.
    Written {
        epoch: u64,
        pkid: u16,
    },
    /// The broker acknowledged this packet id on connection `epoch`.
    Acked {
        epoch: u64,
        pkid: u16,
    },
    NodeReport,
    /// A message for `up/agent-update` (QoS 1, before the outbox backlog; dropped when
    /// offline: a fetch is sent again, the status is in the node report).
    AgentUpdate(PriorityMessage),
    /// An image pre-pull status for `up/prepull` (QoS 1, before the outbox backlog;
    /// `progress`: bytes only, replaced by newer progress while waiting; dropped when
    /// offline: the agent sends the latest after every connect).
    Prepull {
        message: PriorityMessage,
        progress: bool,
    },
}

/// Wakes the uplink task when the outbox has new entries; cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Handle to the running session.
#[derive(Debug)]
pub struct MqttSession {
    client: AsyncClient,
    device: DeviceId,
    connected: Arc<AtomicBool>,
    /// Connections made after the first one.
    reconnects: Arc<AtomicU64>,
    outbox_changed: Arc<Notify>,
    uplink_tx: mpsc::UnboundedSender<UplinkInput>,
    stop_poll: CancellationToken,
    poll_task: tokio::task::JoinHandle<()>,
    uplink_task: tokio::task::JoinHandle<()>,
    uplink_stop: CancellationToken,
    ledger: PublishLedger,
}

/// rustls client configuration (ring provider) from the PEM files.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>> {
    let client = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => None,
    };
    let config =
        edge_protocol::broker_tls::client_config(&edge_protocol::broker_tls::BrokerTlsFiles {
            ca: files.ca_file.as_deref(),
            client,
        })?;
    Ok(Arc::new(config))
}

fn options_for(
    config: &AgentConfig,
    broker: &BrokerUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<MqttOptions> {
    let mut o = MqttOptions::new(config.device_id.as_str(), &broker.host, broker.port);
    o.set_keep_alive(config.keepalive);
    o.set_clean_session(true);
    o.set_manual_acks(true);
    o.set_inflight(32);
    o.set_request_channel_capacity(64);
    // Desired sets may be up to 8 MiB; leave room so oversize ones are refused by the
    // decoder with a clear log line instead of breaking the connection.
    o.set_max_packet_size(
        edge_protocol::MAX_DESIRED_SET_BYTES * 2,
        edge_protocol::MAX_MESSAGE_BYTES * 2,
    );
    let will = Message::from(DeviceState {
        online: false,
        reason: Some("connection lost".to_owned()),
        since: now_millis(),
    })
    .encode()
    .map_err(|e| SessionError::Encode(e.to_string()))?;
    o.set_last_will(LastWill::new(
        Topic::up(&config.device_id, UpChannel::State).to_string(),
        will,
        QoS::AtLeastOnce,
        true,
    ));
    if broker.tls {
        let tls = tls.ok_or_else(|| SessionError::Tls("mqtts:// needs [tls] files".into()))?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    Ok(o)
}

impl MqttSession {
    /// Starts polling and publishing. `node_report` is the latest node report (sent on
    /// every connect and whenever [`MqttSession::node_report_changed`] is called);
    /// `generation` the applied desired generation (sent in the resync request).
    pub fn start(
        config: &AgentConfig,
        store: LocalStore,
        node_report: watch::Receiver<NodeReport>,
        generation: watch::Receiver<u64>,
        events: mpsc::UnboundedSender<SessionEvent>,
    ) -> Result<Self> {
        let tls = if config.brokers.iter().any(|b| b.tls) {
            Some(tls_config(&config.tls)?)
        } else {
            None
        };
        let options: Vec<MqttOptions> = config
            .brokers
            .iter()
            .map(|b| options_for(config, b, tls.as_ref()))
            .collect::<Result<_>>()?;
        let first = options
            .first()
            .cloned()
            .ok_or_else(|| SessionError::Tls("no broker configured".to_owned()))?;
        let (client, mut eventloop) = AsyncClient::new(first, 64);
        // Exec keystrokes and stream credit are small messages: no Nagle delay.
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        // never give a CONNECT up while a cluster node may still be processing it
        network.set_connection_timeout(edge_protocol::broker_failover::CONNACK_TIMEOUT.as_secs());
        eventloop.set_network_options(network);
        let connected = Arc::new(AtomicBool::new(false));
        let reconnects = Arc::new(AtomicU64::new(0));
        let (uplink_tx, uplink_rx) = mpsc::unbounded_channel();
        let stop_poll = CancellationToken::new();
        let ledger = PublishLedger::default();
        let poll_task = tokio::spawn(poll_loop(
            eventloop,
            ledger.clone(),
            options,
            config.brokers.clone(),
            config.reconnect_backoff_max,
            config.device_id.clone(),
            connected.clone(),
            reconnects.clone(),
            uplink_tx.clone(),
            events,
            stop_poll.clone(),
        ));
        let outbox_changed = Arc::new(Notify::new());
        let uplink_stop = CancellationToken::new();
        let uplink_task = tokio::spawn(uplink_loop(UplinkTask {
            client: client.clone(),
            device: config.device_id.clone(),
            store,
            node_report,
            generation,
            inputs: uplink_rx,
            outbox_changed: outbox_changed.clone(),
            stop: uplink_stop.clone(),
            ledger: ledger.clone(),
        }));
        Ok(Self {
            client,
            device: config.device_id.clone(),
            connected,
            reconnects,
            outbox_changed,
            uplink_tx,
            stop_poll,
            poll_task,
            uplink_task,
            uplink_stop,
            ledger,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Times the broker connection was made again since the session started.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// A handle that tells the uplink task the outbox has new entries.
    pub fn outbox_signal(&self) -> OutboxSignal {
        OutboxSignal(self.outbox_changed.clone())
    }

    /// Publishes the current node report again (it changed).
    pub fn node_report_changed(&self) {
        let _ = self.uplink_tx.send(UplinkInput::NodeReport);
    }

    /// Publishes an agent update fetch or status on `up/agent-update` (QoS 1 through the
    /// uplink window, ahead of the outbox backlog); dropped while offline.
    pub fn publish_agent_update(&self, message: Message) {
        if let Some(m) = priority(UpChannel::AgentUpdate, message) {
            let _ = self.uplink_tx.send(UplinkInput::AgentUpdate(m));
        }
    }

    /// Publishes an image pre-pull status on `up/prepull` (QoS 1 through the uplink
    /// window, ahead of the outbox backlog); dropped while offline. A `progress` status
    /// (bytes only) replaces a progress status not sent yet; others all go out.
    pub fn publish_prepull(&self, message: Message, progress: bool) {
        if let Some(message) = priority(UpChannel::Prepull, message) {
            let _ = self
                .uplink_tx
                .send(UplinkInput::Prepull { message, progress });
        }
    }

    /// Acknowledges a received message (after it was handled and persisted). Never
    /// waits: if the request queue is full (offline), the broker redelivers instead, and
    /// the pods keep being reconciled meanwhile.
    pub fn ack(&self, publish: &Publish) {
        if let Err(e) = self.client.try_ack(publish) {
            tracing::debug!(error = %e, "could not acknowledge message; it will be redelivered");
        }
    }

    /// Publishes a best-effort (QoS 0) message; dropped when offline or congested.
    pub fn publish_best_effort(&self, channel: UpChannel, message: Message) {
        if !self.is_connected() {
            return;
        }
        let topic = Topic::up(&self.device, channel);
        match message.encode() {
            Ok(payload) => {
                // QoS 0 only: every QoS 1 publish must come from the uplink window,
                // which matches PUBACKs to the publishes it made.
                if let Err(e) =
                    self.client
                        .try_publish(topic.to_string(), QoS::AtMostOnce, false, payload)
                {
                    tracing::debug!(error = %e, %topic, "dropped best-effort message");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode message"),
        }
    }

    /// A client for tasks that stream (log chunks); they may wait on it.
    pub fn client(&self) -> AsyncClient {
        self.client.clone()
    }

    /// What stream tasks publish with: QoS 1 on `up/stream/{id}`, recorded in the
    /// [`PublishLedger`] so their PUBACKs are never taken for the uplink window's.
    pub fn stream_publisher(&self) -> StreamPublisher {
        StreamPublisher::new(
            self.client.clone(),
            self.ledger.clone(),
            self.device.clone(),
        )
    }

    /// Marks the device offline (retained, reason `shutdown`) and disconnects.
    pub async fn shutdown(self) {
        self.uplink_stop.cancel();
        let _ = self.uplink_task.await;
        if self.connected.load(Ordering::Relaxed) {
            let topic = Topic::up(&self.device, UpChannel::State);
            if let Ok(payload) = Message::from(DeviceState {
                online: false,
                reason: Some("shutdown".to_owned()),
                since: now_millis(),
            })
            .encode()
            {
                let _ = self
                    .client
                    .publish(topic.to_string(), QoS::AtLeastOnce, true, payload)
                    .await;
            }
            let _ = self.client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(3), self.poll_task).await;
        }
        self.stop_poll.cancel();
    }
}

/// A QoS 1 publish was written with `pkid`: tells the uplink window if it was its own.
fn on_written(
    ledger: &PublishLedger,
    uplink: &mpsc::UnboundedSender<UplinkInput>,
    epoch: u64,
    pkid: u16,
) {
    if ledger.written() == Some(Publisher::UplinkWindow) {
        let _ = uplink.send(UplinkInput::Written { epoch, pkid });
    }
}

#[allow(clippy::too_many_arguments)]
async fn poll_loop(
    mut eventloop: EventLoop,
    ledger: PublishLedger,
    options: Vec<MqttOptions>,
    brokers: Vec<BrokerUrl>,
    backoff_max: Duration,
    device: DeviceId,
    connected: Arc<AtomicBool>,
    reconnects: Arc<AtomicU64>,
    uplink: mpsc::UnboundedSender<UplinkInput>,
    events: mpsc::UnboundedSender<SessionEvent>,
    stop: CancellationToken,
) {
    let mut failover = BrokerFailover::new(options.len(), Duration::from_millis(500), backoff_max);
    let mut epoch = 0u64;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failover.connected();
                epoch += 1;
                if epoch > 1 {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
                connected.store(true, Ordering::Relaxed);
                tracing::info!(broker = %brokers.get(failover.current()).map(ToString::to_string).unwrap_or_default(),
                    session_present = ack.session_present, "connected to broker");
                let _ = uplink.send(UplinkInput::Connected {
                    session_present: ack.session_present,
                });
                let _ = events.send(SessionEvent::Connected);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                on_written(&ledger, &uplink, epoch, pkid);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let _ = uplink.send(UplinkInput::Acked {
                    epoch,
                    pkid: ack.pkid,
                });
            }
            Ok(Event::Incoming(Packet::SubAck(ack)))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::warn!(
                    "the broker refused the subscription to this device's topics; retrying in 1 s"
                );
                let uplink = uplink.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = uplink.send(UplinkInput::SubscriptionRefused);
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let _ = events.send(SessionEvent::Downlink(Box::new(Delivery::decode(
                    &device, p,
                ))));
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                connected.store(false, Ordering::Relaxed);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                // rumqttc keeps what it read just before the error (a PUBACK, say) and
                // returns it after the next ConnAck: hand it over now, as the old
                // connection's, so it is never taken for the new connection's.
                for event in std::mem::take(&mut eventloop.state.events) {
                    match event {
                        Event::Incoming(Packet::PubAck(ack)) => {
                            let _ = uplink.send(UplinkInput::Acked {
                                epoch,
                                pkid: ack.pkid,
                            });
                        }
                        Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                            on_written(&ledger, &uplink, epoch, pkid);
                        }
                        // A message of the lost connection cannot be acknowledged any
                        // more; the resync on the next connect brings the desired set.
                        other => tracing::debug!(?other, "dropped an event of the lost connection"),
                    }
                }
                let (next, wait) = failover.failed(jitter_seed());
                let (unsent, dropped) = discard_unacknowledged(&mut eventloop);
                ledger.dropped(dropped);
                if connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "lost the broker connection; pods keep running");
                    let _ = uplink.send(UplinkInput::Disconnected { unsent });
                    let _ = events.send(SessionEvent::Disconnected);
                } else {
                    if unsent > 0 {
                        let _ = uplink.send(UplinkInput::Disconnected { unsent });
                    }
                    tracing::debug!(error = %e, retry_in = ?wait, "broker unreachable");
                }
                // The next node of a cluster (the agent's sessions are clean: the uplink
                // window sends again what the lost connection did not get acknowledged).
                if let Some(opts) = options.get(next).filter(|_| options.len() > 1) {
                    eventloop.mqtt_options = opts.clone();
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// After a broken connection: removes the publishes rumqttc kept for the next session
/// (the agent's sessions are clean, the uplink window sends them again) and returns how
/// many QoS 1 publishes among them were never written (the collision, and those with
/// packet id still 0): the uplink window's, and everyone's (stream data is not sent
/// again: its streams end with the session).
fn discard_unacknowledged(eventloop: &mut EventLoop) -> (usize, usize) {
    let mut window = 0;
    let mut all = 0;
    let mut count = |topic: &str| {
        all += 1;
        if Publisher::of_topic(topic) == Publisher::UplinkWindow {
            window += 1;
        }
    };
    if let Some(p) = eventloop.state.collision.take() {
        count(&p.topic);
    }
    eventloop.pending.retain(|request| match request {
        Request::Publish(p) => {
            if p.qos != QoS::AtMostOnce && p.pkid == 0 {
                count(&p.topic);
            }
            false
        }
        _ => true,
    });
    (window, all)
}

struct UplinkTask {
    client: AsyncClient,
    device: DeviceId,
    store: LocalStore,
    node_report: watch::Receiver<NodeReport>,
    generation: watch::Receiver<u64>,
    inputs: mpsc::UnboundedReceiver<UplinkInput>,
    outbox_changed: Arc<Notify>,
    stop: CancellationToken,
    ledger: PublishLedger,
}

fn priority(channel: UpChannel, message: Message) -> Option<PriorityMessage> {
    match message.encode() {
        Ok(payload) => Some(PriorityMessage { channel, payload }),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a priority message");
            None
        }
    }
}

async fn uplink_loop(mut t: UplinkTask) {
    let mut window = UplinkWindow::default();
    loop {
        tokio::select! {
            _ = t.stop.cancelled() => break,
            input = t.inputs.recv() => match input {
                None => break,
                Some(UplinkInput::Connected { session_present }) => {
                    window.on_connected();
                    if !session_present {
                        let filter = device_subscription(&t.device);
                        if let Err(e) = t.client.subscribe(filter, QoS::AtLeastOnce).await {
                            tracing::error!(error = %e, "subscribe failed");
                        }
                    }
                    let state = DeviceState { online: true, reason: None, since: now_millis() };
                    let report = t.node_report.borrow().clone();
                    let resync = ResyncRequest {
                        known_generation: *t.generation.borrow(),
                        reason: "agent connect".to_owned(),
                    };
                    for m in [
                        priority(UpChannel::State, state.into()),
                        priority(UpChannel::Hello, report.into()),
                        priority(UpChannel::Resync, resync.into()),
                    ].into_iter().flatten() {
                        window.push_priority(m);
                    }
                }
                Some(UplinkInput::SubscriptionRefused) => {
                    // Subscribe again, then ask for the desired set: what the gateway
                    // sent while nothing was subscribed is gone.
                    let filter = device_subscription(&t.device);
                    if let Err(e) = t.client.subscribe(filter, QoS::AtLeastOnce).await {
                        tracing::error!(error = %e, "subscribe failed");
                    }
                    let resync = ResyncRequest {
                        known_generation: *t.generation.borrow(),
                        reason: "subscription refused".to_owned(),
                    };
                    if let Some(m) = priority(UpChannel::Resync, resync.into()) {
                        window.push_priority(m);
                    }
                }
                Some(UplinkInput::Disconnected { unsent }) => window.on_disconnected(unsent),
                Some(UplinkInput::Written { epoch, pkid }) => {
                    if !window.on_written(epoch, pkid) {
                        tracing::warn!(pkid, "a QoS 1 publish the uplink window did not make");
                    }
                }
                Some(UplinkInput::Acked { epoch, pkid }) => {
                    tracing::debug!(epoch, pkid, "broker acknowledged");
                    if let Some(key) = window.on_acked(epoch, pkid)
                        && let Err(e) = t.store.ack(key)
                    {
                        tracing::error!(error = %e, "cannot delete acknowledged message");
                    }
                }
                Some(UplinkInput::AgentUpdate(m)) => window.push_priority(m),
                Some(UplinkInput::Prepull { message, progress: true }) => {
                    window.push_priority_latest(message);
                }
                Some(UplinkInput::Prepull { message, progress: false }) => {
                    window.push_priority(message);
                }
                Some(UplinkInput::NodeReport) => {
                    let mut report = t.node_report.borrow().clone();
                    report.update = true;
                    if let Some(m) = priority(UpChannel::Hello, report.into()) {
                        window.push_priority(m);
                    }
                }
            },
            _ = t.outbox_changed.notified() => {}
        }
        loop {
            let head = match t.store.outbox_head() {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    None
                }
            };
            let head_key = head.as_ref().map(|(k, _)| *k);
            let Some(send) = window.next(head_key) else {
                break;
            };
            tracing::debug!(?send, "publishing");
            let (channel, payload) = match send {
                Send::Priority(p) => (p.channel, p.payload),
                Send::Outbox(_) => match head {
                    Some((_, item)) => (item.up_channel(), item.payload),
                    None => break,
                },
            };
            let topic = Topic::up(&t.device, channel);
            let retain = topic.retained();
            if let Err(e) = t
                .ledger
                .publish(
                    &t.client,
                    Publisher::UplinkWindow,
                    topic.to_string(),
                    retain,
                    payload,
                )
                .await
            {
                tracing::warn!(error = %e, "publish failed");
                window.on_request_failed();
                break;
            }
        }
    }
}
