//! Who made each QoS 1 publish request, in the order the MQTT client writes them: the
//! [`crate::uplink_window::UplinkWindow`] (status reports, events, connect-time messages)
//! or a stream task (`up/stream/{id}`).
//!
//! rumqttc reports only the packet id of a publish it wrote, not what it was, and writes
//! requests in the order they were made. Every QoS 1 request goes through
//! [`PublishLedger::publish`], which records its publisher and hands it to the client in
//! one step (so the ledger's order is the client's order); the poll task takes the oldest
//! entry for every written publish ([`PublishLedger::written`]) and tells the uplink
//! window only about its own. Stream data thus never takes the place of a status report
//! in the window's bookkeeping, and it never enters the outbox: it cannot evict reports,
//! and reports never wait behind the window for stream data (see `docs/agent.md`).
//! [`StreamPublisher`] is what stream tasks publish with.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use edge_protocol::{DeviceId, Message, Topic, UpChannel};
use rumqttc::{AsyncClient, ClientError, QoS};

/// The maker of one QoS 1 publish request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    UplinkWindow,
    Stream,
}

impl Publisher {
    /// Who publishes on `topic` (as written by [`Topic`]'s `Display`).
    pub fn of_topic(topic: &str) -> Self {
        match Topic::parse(topic) {
            Ok(Topic::Up {
                channel: UpChannel::Stream(_),
                ..
            }) => Publisher::Stream,
            _ => Publisher::UplinkWindow,
        }
    }
}

/// Shared between the publishers and the poll task; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PublishLedger {
    /// Held while a request is handed to the client, so the order of `pending` is the
    /// order of the client's request queue.
    handing: Arc<tokio::sync::Mutex<()>>,
    /// Requested and not yet written, oldest first.
    pending: Arc<Mutex<VecDeque<Publisher>>>,
}

impl PublishLedger {
    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<Publisher>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a QoS 1 publish to the client (waits while its queue is full), recorded as
    /// `publisher`'s.
    pub async fn publish(
        &self,
        client: &AsyncClient,
        publisher: Publisher,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), ClientError> {
        let _handing = self.handing.lock().await;
        self.pending().push_back(publisher);
        let result = client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await;
        if result.is_err() {
            self.pending().pop_back();
        }
        result
    }

    /// The client wrote a QoS 1 publish: whose it was (None for one made elsewhere,
    /// such as the shutdown state message).
    pub fn written(&self) -> Option<Publisher> {
        self.pending().pop_front()
    }

    /// The client dropped the `dropped` oldest requests without writing them (a lost
    /// connection).
    pub fn dropped(&self, dropped: usize) {
        let mut pending = self.pending();
        for _ in 0..dropped {
            if pending.pop_front().is_none() {
                break;
            }
        }
    }
}

/// Why a stream message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("encoding: {0}")]
    Encode(#[from] edge_protocol::EncodeError),
    #[error("the MQTT session is gone: {0}")]
    Closed(ClientError),
}

/// Publishes the device's side of streams (QoS 1, not through the outbox); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct StreamPublisher {
    client: AsyncClient,
    ledger: PublishLedger,
    device: DeviceId,
    /// Send stream data in binary frames (the gateway's stream protocol is 2 or later).
    binary_data: bool,
}

impl StreamPublisher {
    pub fn new(client: AsyncClient, ledger: PublishLedger, device: DeviceId) -> Self {
        Self {
            client,
            ledger,
            device,
            binary_data: false,
        }
    }

    /// This publisher for a stream the gateway opened with stream protocol `version`:
    /// data goes in binary frames from version 2 on, in JSON envelopes before.
    pub fn for_stream_version(mut self, version: u32) -> Self {
        self.binary_data = version >= edge_protocol::BINARY_DATA_FRAMES_SINCE;
        self
    }

    /// Publishes `message` on `up/stream/{stream}`; waits while the client's queue is
    /// full. Fails only when the session is gone.
    pub async fn publish(
        &self,
        stream: &edge_protocol::RequestId,
        message: Message,
    ) -> Result<(), PublishError> {
        let topic = Topic::up(&self.device, UpChannel::Stream(stream.clone()));
        let payload = message.encode_for_stream(self.binary_data)?;
        self.ledger
            .publish(
                &self.client,
                Publisher::Stream,
                topic.to_string(),
                false,
                payload,
            )
            .await
            .map_err(PublishError::Closed)
    }
}

#[cfg(test)]
mod tests;
