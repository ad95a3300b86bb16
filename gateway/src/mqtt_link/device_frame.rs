//! Decoding at the edge: an MQTT publish (topic, payload, retain flag) becomes a typed,
//! validated [`DeviceFrame`] for one device, or a [`Rejection`] saying why it was
//! dropped. Nothing after the MQTT link sees raw bytes.

use edge_protocol::{
    DecodeError, DeviceId, DeviceState, Heartbeat, LogChunk, LogTailReport, Message, MessageKind,
    NodeReport, NodeStats, PodEventReport, PodStatusReport, RequestId, ResyncRequest, Topic,
    UpChannel,
};

use crate::device_streams::DeviceStreamMessage;
use crate::hostile_input::{RejectReason, Rejection};

/// A message from one device, decoded and checked against its topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFrame {
    /// The device named by the topic (the broker's ACL makes it the sender).
    pub device: DeviceId,
    pub message: DeviceMessage,
}

/// What a device can say, by topic.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceMessage {
    /// `up/hello`: the node report of a new agent session.
    Hello(Box<NodeReport>),
    /// `up/heartbeat`.
    Heartbeat(Heartbeat),
    /// `up/state`; `retained` is the MQTT retain flag (a stale state from the broker).
    State { state: DeviceState, retained: bool },
    /// `up/status`.
    Status(PodStatusReport),
    /// `up/events`.
    Events(PodEventReport),
    /// `up/resync`.
    Resync(ResyncRequest),
    /// `up/logs/{request}`.
    LogChunk { request: RequestId, chunk: LogChunk },
    /// `up/logtail`: new output for the offline log cache.
    LogTail(LogTailReport),
    /// `up/stats`: a resource usage sample (filed in [`crate::usage_stats`], not handled
    /// by the fleet's state machine).
    Stats(Box<NodeStats>),
    /// `up/stream/{stream}`: the device's side of an exec, attach or port-forward.
    Stream {
        stream: RequestId,
        message: DeviceStreamMessage,
    },
    /// `up/agent-update`: a chunk fetch or the progress of an agent update (handled by
    /// [`crate::agent_rollout`], not by the fleet's state machine).
    AgentUpdate(DeviceAgentUpdate),
    /// `up/prepull`: the device's progress on its image pre-pull set (handled by
    /// [`crate::image_prepull`], not by the fleet's state machine).
    Prepull(edge_protocol::ImagePrepullStatus),
}

/// What a device says on `up/agent-update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAgentUpdate {
    Fetch(edge_protocol::AgentUpdateFetch),
    Status(edge_protocol::AgentUpdateStatus),
}

impl DeviceMessage {
    /// The protocol's name of the message kind (the `kind` label of the metrics).
    pub fn kind(&self) -> MessageKind {
        match self {
            DeviceMessage::Hello(_) => MessageKind::NodeReport,
            DeviceMessage::Heartbeat(_) => MessageKind::Heartbeat,
            DeviceMessage::State { .. } => MessageKind::DeviceState,
            DeviceMessage::Status(_) => MessageKind::PodStatusReport,
            DeviceMessage::Events(_) => MessageKind::PodEventReport,
            DeviceMessage::Resync(_) => MessageKind::ResyncRequest,
            DeviceMessage::LogChunk { .. } => MessageKind::LogChunk,
            DeviceMessage::LogTail(_) => MessageKind::LogTailReport,
            DeviceMessage::Stats(_) => MessageKind::NodeStats,
            DeviceMessage::Stream { message, .. } => match message {
                DeviceStreamMessage::Opened(_) => MessageKind::StreamOpened,
                DeviceStreamMessage::Data(_) => MessageKind::StreamData,
                DeviceStreamMessage::Credit(_) => MessageKind::StreamCredit,
                DeviceStreamMessage::Close(_) => MessageKind::StreamClose,
            },
            DeviceMessage::AgentUpdate(DeviceAgentUpdate::Fetch(_)) => {
                MessageKind::AgentUpdateFetch
            }
            DeviceMessage::AgentUpdate(DeviceAgentUpdate::Status(_)) => {
                MessageKind::AgentUpdateStatus
            }
            DeviceMessage::Prepull(_) => MessageKind::ImagePrepullStatus,
        }
    }
}

fn decode_reason(e: &DecodeError) -> RejectReason {
    match e {
        DecodeError::TooLarge { .. } => RejectReason::Oversized,
        DecodeError::UnsupportedVersion { .. }
        | DecodeError::BadVersion(_)
        | DecodeError::MissingVersion => RejectReason::WrongVersion,
        DecodeError::WrongTopic { .. } => RejectReason::WrongTopic,
        _ => RejectReason::Malformed,
    }
}

/// Decodes one publish from the broker.
pub fn decode(topic: &str, payload: &[u8], retained: bool) -> Result<DeviceFrame, Rejection> {
    let parsed = Topic::parse(topic)
        .map_err(|e| Rejection::new(topic, RejectReason::BadTopic, e.to_string()))?;
    let Topic::Up { device, channel } = parsed.clone() else {
        return Err(Rejection::new(
            topic,
            RejectReason::UnexpectedDirection,
            "gateway only reads up/ topics",
        ));
    };
    let msg = Message::decode_on(&parsed, payload)
        .map_err(|e| Rejection::new(device.as_str(), decode_reason(&e), e.to_string()))?;
    let message = match (channel, msg) {
        (UpChannel::Hello, Message::NodeReport(r)) => DeviceMessage::Hello(Box::new(r)),
        (UpChannel::Heartbeat, Message::Heartbeat(h)) => DeviceMessage::Heartbeat(h),
        (UpChannel::State, Message::DeviceState(state)) => DeviceMessage::State { state, retained },
        (UpChannel::Status, Message::PodStatusReport(r)) => DeviceMessage::Status(r),
        (UpChannel::Events, Message::PodEventReport(r)) => DeviceMessage::Events(r),
        (UpChannel::Resync, Message::ResyncRequest(r)) => DeviceMessage::Resync(r),
        (UpChannel::Stats, Message::NodeStats(s)) => DeviceMessage::Stats(Box::new(s)),
        (UpChannel::Logs(request), Message::LogChunk(chunk)) => {
            DeviceMessage::LogChunk { request, chunk }
        }
        (UpChannel::LogTail, Message::LogTailReport(r)) => DeviceMessage::LogTail(r),
        // a retained fetch or status would be replayed at every subscription
        (UpChannel::AgentUpdate | UpChannel::Prepull, _) if retained => {
            return Err(Rejection::new(
                device.as_str(),
                RejectReason::Malformed,
                "agent update and pre-pull messages must not be retained",
            ));
        }
        (UpChannel::Prepull, Message::ImagePrepullStatus(s)) => DeviceMessage::Prepull(s),
        (UpChannel::AgentUpdate, Message::AgentUpdateFetch(f)) => {
            DeviceMessage::AgentUpdate(DeviceAgentUpdate::Fetch(f))
        }
        (UpChannel::AgentUpdate, Message::AgentUpdateStatus(s)) => {
            DeviceMessage::AgentUpdate(DeviceAgentUpdate::Status(s))
        }
        (UpChannel::Stream(stream), message) => {
            let message = match message {
                Message::StreamOpened(m) => DeviceStreamMessage::Opened(m),
                Message::StreamData(m) => DeviceStreamMessage::Data(m),
                Message::StreamCredit(m) => DeviceStreamMessage::Credit(m),
                Message::StreamClose(m) => DeviceStreamMessage::Close(m),
                other => {
                    return Err(Rejection::new(
                        device.as_str(),
                        RejectReason::WrongTopic,
                        other.kind().as_str(),
                    ));
                }
            };
            DeviceMessage::Stream { stream, message }
        }
        // `decode_on` already refuses a kind its topic does not carry
        (_, other) => {
            return Err(Rejection::new(
                device.as_str(),
                RejectReason::WrongTopic,
                other.kind().as_str(),
            ));
        }
    };
    Ok(DeviceFrame { device, message })
}

#[cfg(test)]
mod tests;
