//! Interactive streams to devices (`kubectl exec`, `attach`, `port-forward`): the
//! registry that routes each device's `up/stream/{id}` messages to the kubelet API
//! connection that opened the stream, and the pure pieces the connections are built of.
//!
//! Why beside the fleet and not inside its state machine: a stream is owned by one
//! kubelet API connection, which holds its flow-control windows and buffers; the fleet
//! only has to route the device's messages (in order with its hellos) and to say when a
//! device went away ([`crate::fleet::FleetEffect::EndDeviceStreams`]). Streams of data
//! never wait in the fleet's queue for anything else.
//!
//! | file | what is there |
//! |---|---|
//! | `mod.rs` | [`DeviceStreams`]: open streams by id (with their device), delivery, ends |
//! | `target.rs` | which device and pod a request is for, and why it cannot be served (pure) |
//! | `flow.rs` | [`StreamFlow`]: one stream's windows and the client's input waiting for credit (pure) |

mod flow;
mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use edge_protocol::{
    BINARY_DATA_FRAMES_SINCE, DeviceId, Message, RequestId, StreamClose, StreamCredit, StreamData,
    StreamError, StreamErrorCode, StreamOpened,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use flow::{InputFrames, MAX_INPUT_BACKLOG, StreamFlow};
pub use target::{DeviceReadiness, PodPlacement, StreamRefusal, StreamRequestTarget, check_target};

use crate::fleet::Outgoing;
use crate::metrics::Metrics;

/// Device messages that may wait for one connection while its client does not read.
/// Their data is bounded by the windows; their number is bounded here: a device that
/// sends more frames than this (tiny ones) to a stalled client breaks the connection,
/// so an agent should send what it has in as few frames as it can.
pub const CONNECTION_EVENT_BUFFER: usize = 4096;

/// What a device says on `up/stream/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceStreamMessage {
    Opened(StreamOpened),
    Data(StreamData),
    Credit(StreamCredit),
    Close(StreamClose),
}

/// What a connection learns about one of its streams.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Device {
        id: RequestId,
        message: DeviceStreamMessage,
    },
    /// The device went offline or its agent restarted: the stream is over.
    DeviceGone { id: RequestId, reason: String },
}

/// What a stream is for (the `kind` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Exec,
    Attach,
    PortForward,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Exec => "exec",
            StreamKind::Attach => "attach",
            StreamKind::PortForward => "portforward",
        }
    }
}

/// Why a stream ended (the `reason` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The device closed it (an exec exited, a connection ended).
    Device,
    /// The client went away or closed it.
    Client,
    /// The device refused to open it (no such container, connection refused...).
    Refused,
    /// The device did not answer the open in time.
    OpenTimeout,
    /// The device went offline or its agent restarted.
    DeviceGone,
    /// The device broke the stream protocol (gap, over the window, flooding).
    Protocol,
    /// No data either way for `--streaming-connection-idle-timeout`.
    Idle,
    /// The gateway shuts down.
    Shutdown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Device => "device_closed",
            EndReason::Client => "client_closed",
            EndReason::Refused => "refused",
            EndReason::OpenTimeout => "open_timeout",
            EndReason::DeviceGone => "device_gone",
            EndReason::Protocol => "protocol_error",
            EndReason::Idle => "idle_timeout",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// The gateway's [`StreamClose`]: why it stops a stream.
pub fn gateway_close(code: StreamErrorCode, message: impl Into<String>) -> StreamClose {
    StreamClose {
        exit_code: None,
        error: Some(StreamError {
            code,
            message: message.into(),
        }),
    }
}

/// Why a device message was not delivered (counted as a rejection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// No open stream with this id.
    UnknownStream,
    /// The stream belongs to another device: a spoofing attempt.
    WrongDevice,
    /// The connection's client reads slower than the device floods it; it was broken.
    Overflow,
}

#[derive(Debug)]
struct Route {
    device: DeviceId,
    /// The device said it reads binary data frames ([`StreamOpened::version`]).
    binary_data: bool,
    tx: mpsc::Sender<StreamEvent>,
    /// Cancelled when the connection must end (its device flooded it).
    broken: CancellationToken,
}

/// Open streams, by id (unique in this gateway process).
#[derive(Debug)]
pub struct DeviceStreams {
    routes: Mutex<HashMap<RequestId, Route>>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    metrics: Arc<Metrics>,
}

impl DeviceStreams {
    pub fn new(outbox: mpsc::UnboundedSender<Outgoing>, metrics: Arc<Metrics>) -> Self {
        Self {
            routes: Mutex::new(HashMap::new()),
            outbox,
            metrics,
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new stream to `device` whose events go to `tx` (one channel per
    /// connection); `broken` is cancelled if the device floods the connection. The caller
    /// publishes the [`edge_protocol::StreamOpen`] with [`DeviceStreams::send`] and calls
    /// [`DeviceStreams::finish`] exactly once when the stream is over.
    pub fn open(
        &self,
        device: &DeviceId,
        kind: StreamKind,
        tx: mpsc::Sender<StreamEvent>,
        broken: CancellationToken,
    ) -> RequestId {
        let id = loop {
            let raw = uuid::Uuid::new_v4().simple().to_string();
            if let Ok(id) = RequestId::new(raw) {
                if !self.routes().contains_key(&id) {
                    break id;
                }
            }
        };
        self.routes().insert(
            id.clone(),
            Route {
                device: device.clone(),
                binary_data: false,
                tx,
                broken,
            },
        );
        self.metrics.stream_opened(kind.as_str());
        id
    }

    /// Publishes `message` on `down/stream/{id}` of `device`.
    pub fn send(&self, device: &DeviceId, id: &RequestId, message: impl Into<Message>) {
        let binary_data = self.routes().get(id).is_some_and(|r| r.binary_data);
        let _ = self.outbox.send(Outgoing::Stream {
            device: device.clone(),
            id: id.clone(),
            message: Box::new(message.into()),
            binary_data,
        });
    }

    /// Hands a device's message to the connection of its stream.
    pub fn deliver(
        &self,
        device: &DeviceId,
        id: &RequestId,
        message: DeviceStreamMessage,
    ) -> Result<(), DeliveryError> {
        let mut routes = self.routes();
        let route = routes.get_mut(id).ok_or(DeliveryError::UnknownStream)?;
        if &route.device != device {
            return Err(DeliveryError::WrongDevice);
        }
        if let DeviceStreamMessage::Opened(opened) = &message {
            route.binary_data = opened
                .version
                .is_some_and(|v| v >= BINARY_DATA_FRAMES_SINCE);
        }
        let event = StreamEvent::Device {
            id: id.clone(),
            message,
        };
        match route.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                routes.remove(id);
                Err(DeliveryError::UnknownStream)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(route) = routes.remove(id) {
                    route.broken.cancel();
                }
                Err(DeliveryError::Overflow)
            }
        }
    }

    /// The stream is over (the route is forgotten, if still there): counted by `reason`.
    pub fn finish(&self, id: &RequestId, kind: StreamKind, reason: EndReason) {
        self.routes().remove(id);
        self.metrics.stream_ended(kind.as_str(), reason.as_str());
    }

    /// Ends every stream of `device` (it went offline or its agent restarted): each
    /// connection is told why. Returns the ids.
    pub fn close_device(&self, device: &DeviceId, reason: &str) -> Vec<RequestId> {
        let mut routes = self.routes();
        let ids: Vec<RequestId> = routes
            .iter()
            .filter(|(_, r)| &r.device == device)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            if let Some(route) = routes.remove(id) {
                let gone = StreamEvent::DeviceGone {
                    id: id.clone(),
                    reason: reason.to_owned(),
                };
                if route.tx.try_send(gone).is_err() {
                    route.broken.cancel();
                }
            }
        }
        ids
    }

    /// Streams open now.
    pub fn open_count(&self) -> usize {
        self.routes().len()
    }
}

#[cfg(test)]
mod tests;
