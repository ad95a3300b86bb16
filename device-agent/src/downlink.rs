//! Decoding at the MQTT edge: a frame the broker delivers on the device's `down/...`
//! topics becomes a typed [`Downlink`] or a typed [`RejectReason`] here, before anything
//! else in the agent sees it. Rejected frames are logged and acknowledged (so the broker
//! does not redeliver them); nothing else changes.

use edge_protocol::{
    AgentUpdateChunk, AgentUpdateOrder, DecodeError, DesiredSet, DeviceId, DownChannel,
    ImagePrepullSet, LogRequest, Message, MessageKind, RequestId, ResyncRequest, RetireOrder,
    StreamClose, StreamCredit, StreamData, StreamOpen, StreamResize, Topic, TopicError,
};
use rumqttc::Publish;

/// A valid message from the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Downlink {
    /// `down/desired`: the whole desired set.
    Desired(DesiredSet),
    /// `down/resync`: the gateway asks for the node report and a full status report.
    Resync(ResyncRequest),
    /// `down/logs/{id}`: a log request.
    LogRequest { id: RequestId, request: LogRequest },
    /// `down/logs/{id}`: the gateway no longer wants that log stream.
    LogCancel { id: RequestId },
    /// `down/stream/{id}`: the gateway's side of an exec, attach or port-forward.
    Stream {
        id: RequestId,
        message: StreamDownlink,
    },
    /// `down/retire`: the device was retired; wipe and exit.
    Retire(RetireOrder),
    /// `down/agent-update`: run this signed agent version (an update over the air).
    AgentUpdateOrder(AgentUpdateOrder),
    /// `down/agent-update`: bytes of the ordered binary this device fetched.
    AgentUpdateChunk(AgentUpdateChunk),
    /// `down/prepull`: the images to hold ahead of a rollout (the whole set).
    Prepull(ImagePrepullSet),
}

/// What the gateway sends on one stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamDownlink {
    Open(StreamOpen),
    Data(StreamData),
    Credit(StreamCredit),
    Resize(StreamResize),
    Close(StreamClose),
}

/// Why a frame was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectReason {
    #[error("topic {topic} is not addressed to this device")]
    NotForThisDevice { topic: Topic },
    #[error("unknown topic: {0}")]
    UnknownTopic(#[from] TopicError),
    #[error("malformed message on {topic} ({bytes} bytes): {error}")]
    Malformed {
        topic: Topic,
        bytes: usize,
        #[source]
        error: DecodeError,
    },
    #[error("unexpected {kind} on {topic}")]
    Unexpected { topic: Topic, kind: MessageKind },
}

impl RejectReason {
    /// Logs the rejection (one warning line per rejected frame).
    pub fn log(&self) {
        match self {
            RejectReason::NotForThisDevice { topic } => {
                tracing::warn!(topic = %topic, "ignoring a message not addressed to this device");
            }
            RejectReason::UnknownTopic(e) => {
                tracing::warn!(error = %e, "ignoring a message on an unknown topic");
            }
            RejectReason::Malformed {
                topic,
                bytes,
                error,
            } => {
                tracing::warn!(%topic, bytes, error = %error, "rejected a malformed message");
            }
            RejectReason::Unexpected { topic, kind } => {
                tracing::warn!(kind = %kind, %topic, "ignoring an unexpected message");
            }
        }
    }
}

/// A frame as received: what it says, and the delivery to acknowledge once handled.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Result<Downlink, RejectReason>,
    /// The MQTT delivery, for [`crate::mqtt_session::MqttSession::ack`].
    pub publish: Publish,
}

impl Delivery {
    /// Decodes a frame received by `device`.
    pub fn decode(device: &DeviceId, publish: Publish) -> Self {
        Self {
            message: decode(device, &publish.topic, &publish.payload),
            publish,
        }
    }
}

/// Decodes a frame on `topic` for `device`: topic first (ours, a `down/` channel), then
/// the payload (size, version, kind allowed on that channel).
pub fn decode(device: &DeviceId, topic: &str, payload: &[u8]) -> Result<Downlink, RejectReason> {
    let topic = match Topic::parse(topic)? {
        t @ Topic::Down { .. } if t.device() == device => t,
        t => return Err(RejectReason::NotForThisDevice { topic: t }),
    };
    let message = Message::decode_on(&topic, payload).map_err(|error| RejectReason::Malformed {
        topic: topic.clone(),
        bytes: payload.len(),
        error,
    })?;
    let Topic::Down { channel, .. } = &topic else {
        return Err(RejectReason::NotForThisDevice { topic });
    };
    match (message, channel) {
        (Message::DesiredSet(set), DownChannel::Desired) => Ok(Downlink::Desired(set)),
        (Message::ResyncRequest(r), DownChannel::Resync) => Ok(Downlink::Resync(r)),
        (Message::RetireOrder(order), DownChannel::Retire) => Ok(Downlink::Retire(order)),
        (Message::AgentUpdateOrder(order), DownChannel::AgentUpdate) => {
            Ok(Downlink::AgentUpdateOrder(order))
        }
        (Message::AgentUpdateChunk(chunk), DownChannel::AgentUpdate) => {
            Ok(Downlink::AgentUpdateChunk(chunk))
        }
        (Message::ImagePrepullSet(set), DownChannel::Prepull) => Ok(Downlink::Prepull(set)),
        (Message::LogRequest(request), DownChannel::Logs(id)) => Ok(Downlink::LogRequest {
            id: id.clone(),
            request,
        }),
        (Message::LogCancel(_), DownChannel::Logs(id)) => {
            Ok(Downlink::LogCancel { id: id.clone() })
        }
        (message, DownChannel::Stream(id)) => {
            let message = match message {
                Message::StreamOpen(m) => StreamDownlink::Open(m),
                Message::StreamData(m) => StreamDownlink::Data(m),
                Message::StreamCredit(m) => StreamDownlink::Credit(m),
                Message::StreamResize(m) => StreamDownlink::Resize(m),
                Message::StreamClose(m) => StreamDownlink::Close(m),
                other => {
                    return Err(RejectReason::Unexpected {
                        kind: other.kind(),
                        topic,
                    });
                }
            };
            Ok(Downlink::Stream {
                id: id.clone(),
                message,
            })
        }
        (other, _) => Err(RejectReason::Unexpected {
            kind: other.kind(),
            topic,
        }),
    }
}

#[cfg(test)]
mod tests;
