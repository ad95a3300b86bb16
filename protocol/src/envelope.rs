//! The envelope every payload travels in, and the only way to encode and decode one.
//!
//! ```json
//! {"protocol":"1.0","kind":"heartbeat","body":{"sequence":7, ...}}
//! ```
//!
//! Decoding is total: any byte string gives a `Message` or a typed [`DecodeError`],
//! never a panic. Unknown fields are ignored (so a newer minor version can add them);
//! an unknown kind, a different major version and an oversized payload are errors.

use serde::Serialize;
use serde_json::Value;

use crate::agent_update::{
    AgentUpdateChunk, AgentUpdateFetch, AgentUpdateOrder, AgentUpdateStatus,
};
use crate::desired_set::DesiredSet;
use crate::image_prepull::{ImagePrepullSet, ImagePrepullStatus};
use crate::logs::{LogCancel, LogChunk, LogRequest, LogTailReport};
use crate::node_report::{DeviceState, Heartbeat, NodeReport};
use crate::node_stats::NodeStats;
use crate::pod_event::PodEventReport;
use crate::pod_status::PodStatusReport;
use crate::resync::ResyncRequest;
use crate::retirement::RetireOrder;
use crate::stream::{
    StreamClose, StreamCredit, StreamData, StreamOpen, StreamOpened, StreamResize,
};
use crate::topic::{DownChannel, Topic, UpChannel};
use crate::version::{PROTOCOL_VERSION, ProtocolVersion};

/// Largest desired set accepted (resolved ConfigMaps and Secrets make these the largest).
pub const MAX_DESIRED_SET_BYTES: usize = 8 * 1024 * 1024;
/// Largest payload of every other kind.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Every message kind of protocol v1, with its `kind` string: the one list the
/// [`Message`] and [`MessageKind`] enums, the kind strings, the envelope's encoding and
/// decoding of each body and the `From` conversions are all generated from.
macro_rules! messages {
    ($($variant:ident => $kind:literal,)*) => {
        /// Every message of protocol v1.
        // Messages are decoded one at a time and moved once; boxing the node report would
        // only add indirection.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $($variant($variant),)*
        }

        /// The `kind` field of the envelope.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MessageKind {
            $($variant,)*
        }

        impl MessageKind {
            pub const ALL: [MessageKind; [$($kind),*].len()] = [$(MessageKind::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(MessageKind::$variant => $kind,)*
                }
            }
        }

        impl Message {
            pub fn kind(&self) -> MessageKind {
                match self {
                    $(Message::$variant(_) => MessageKind::$variant,)*
                }
            }

            /// The envelope around this message's body (the size is not checked).
            fn envelope(&self) -> Result<Vec<u8>, EncodeError> {
                match self {
                    $(Message::$variant(body) => envelope(MessageKind::$variant, body),)*
                }
            }

            /// The message of `kind` whose body is `body`.
            fn from_body(kind: MessageKind, body: Value) -> Result<Message, DecodeError> {
                let bad = |e: serde_json::Error| DecodeError::InvalidBody {
                    kind,
                    error: e.to_string(),
                };
                Ok(match kind {
                    $(MessageKind::$variant => {
                        Message::$variant(serde_json::from_value(body).map_err(bad)?)
                    })*
                })
            }
        }

        $(impl From<$variant> for Message {
            fn from(v: $variant) -> Self {
                Message::$variant(v)
            }
        })*
    };
}

messages! {
    NodeReport => "nodeReport",
    Heartbeat => "heartbeat",
    DeviceState => "deviceState",
    PodStatusReport => "podStatusReport",
    PodEventReport => "podEventReport",
    ResyncRequest => "resyncRequest",
    LogChunk => "logChunk",
    DesiredSet => "desiredSet",
    LogRequest => "logRequest",
    LogCancel => "logCancel",
    NodeStats => "nodeStats",
    LogTailReport => "logTailReport",
    StreamOpen => "streamOpen",
    StreamOpened => "streamOpened",
    StreamData => "streamData",
    StreamCredit => "streamCredit",
    StreamResize => "streamResize",
    StreamClose => "streamClose",
    RetireOrder => "retireOrder",
    AgentUpdateOrder => "agentUpdateOrder",
    AgentUpdateFetch => "agentUpdateFetch",
    AgentUpdateChunk => "agentUpdateChunk",
    AgentUpdateStatus => "agentUpdateStatus",
    ImagePrepullSet => "imagePrepullSet",
    ImagePrepullStatus => "imagePrepullStatus",
}

impl MessageKind {
    pub fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Largest encoded payload of this kind.
    pub fn max_payload_bytes(self) -> usize {
        match self {
            MessageKind::DesiredSet => MAX_DESIRED_SET_BYTES,
            _ => MAX_MESSAGE_BYTES,
        }
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payload could not be decoded. Each variant is a different thing to log or count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is {size} bytes; the limit for {what} is {limit}")]
    TooLarge {
        size: usize,
        limit: usize,
        what: String,
    },
    #[error("payload is not a JSON envelope object: {0}")]
    Malformed(String),
    #[error("envelope has no \"protocol\" version")]
    MissingVersion,
    #[error("envelope version {0:?} is not of the form MAJOR.MINOR")]
    BadVersion(String),
    #[error("protocol {found} is not supported; this build speaks {supported}")]
    UnsupportedVersion {
        found: ProtocolVersion,
        supported: ProtocolVersion,
    },
    #[error("envelope has no \"kind\"")]
    MissingKind,
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    #[error("{kind} body is invalid: {error}")]
    InvalidBody { kind: MessageKind, error: String },
    #[error("a {kind} message is not allowed on topic {topic}")]
    WrongTopic { kind: MessageKind, topic: String },
    #[error(transparent)]
    DataFrame(#[from] crate::stream::DataFrameError),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{kind} is {size} bytes encoded; the limit is {limit}")]
    TooLarge {
        kind: MessageKind,
        size: usize,
        limit: usize,
    },
    #[error("{kind} could not be serialized: {error}")]
    Serialize { kind: MessageKind, error: String },
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T: Serialize> {
    protocol: ProtocolVersion,
    kind: &'static str,
    body: &'a T,
}

impl Message {
    /// Encodes in the current protocol version, refusing payloads over the kind's limit.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let kind = self.kind();
        let bytes = self.envelope()?;
        let limit = kind.max_payload_bytes();
        if bytes.len() > limit {
            return Err(EncodeError::TooLarge {
                kind,
                size: bytes.len(),
                limit,
            });
        }
        Ok(bytes)
    }

    /// Encodes for a stream peer: [`StreamData`](crate::StreamData) in the binary form
    /// when `binary_data` (the peer's stream version is 2 or more), everything else as
    /// [`Message::encode`].
    pub fn encode_for_stream(&self, binary_data: bool) -> Result<Vec<u8>, EncodeError> {
        match self {
            Message::StreamData(d) if binary_data => {
                let bytes = crate::stream::encode_data_frame(d);
                let limit = MessageKind::StreamData.max_payload_bytes();
                if bytes.len() > limit {
                    return Err(EncodeError::TooLarge {
                        kind: MessageKind::StreamData,
                        size: bytes.len(),
                        limit,
                    });
                }
                Ok(bytes)
            }
            _ => self.encode(),
        }
    }

    /// Decodes any v1 message. Prefer [`Message::decode_on`] when the topic is known.
    pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
        if crate::stream::is_data_frame(payload) {
            return Ok(Message::StreamData(crate::stream::decode_data_frame(
                payload,
            )?));
        }
        if payload.len() > MAX_DESIRED_SET_BYTES {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: MAX_DESIRED_SET_BYTES,
                what: "any message".to_owned(),
            });
        }
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(DecodeError::Malformed("not a JSON object".to_owned()));
        };
        let version = match map.get("protocol") {
            None | Some(Value::Null) => return Err(DecodeError::MissingVersion),
            Some(Value::String(s)) => {
                ProtocolVersion::parse(s).ok_or_else(|| DecodeError::BadVersion(s.clone()))?
            }
            Some(other) => return Err(DecodeError::BadVersion(other.to_string())),
        };
        if !PROTOCOL_VERSION.can_read(version) {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: PROTOCOL_VERSION,
            });
        }
        let kind = match map.get("kind") {
            None | Some(Value::Null) => return Err(DecodeError::MissingKind),
            Some(Value::String(s)) => {
                MessageKind::parse(s).ok_or_else(|| DecodeError::UnknownKind(s.clone()))?
            }
            Some(other) => return Err(DecodeError::UnknownKind(other.to_string())),
        };
        if payload.len() > kind.max_payload_bytes() {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: kind.max_payload_bytes(),
                what: kind.to_string(),
            });
        }
        let body = map
            .remove("body")
            .unwrap_or(Value::Object(Default::default()));
        Message::from_body(kind, body)
    }

    /// Decodes a payload received on `topic`, checking the size against that channel's
    /// limit before parsing and that the kind belongs on the channel.
    pub fn decode_on(topic: &Topic, payload: &[u8]) -> Result<Message, DecodeError> {
        let limit = allowed_kinds(topic)
            .iter()
            .map(|k| k.max_payload_bytes())
            .max()
            .unwrap_or(MAX_MESSAGE_BYTES);
        if payload.len() > limit {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit,
                what: format!("topic {topic}"),
            });
        }
        let msg = Message::decode(payload)?;
        if !allowed_kinds(topic).contains(&msg.kind()) {
            return Err(DecodeError::WrongTopic {
                kind: msg.kind(),
                topic: topic.to_string(),
            });
        }
        Ok(msg)
    }
}

/// The message kinds that may travel on a topic.
pub fn allowed_kinds(topic: &Topic) -> &'static [MessageKind] {
    match topic {
        Topic::Up { channel, .. } => match channel {
            UpChannel::Hello => &[MessageKind::NodeReport],
            UpChannel::Heartbeat => &[MessageKind::Heartbeat],
            UpChannel::State => &[MessageKind::DeviceState],
            UpChannel::Status => &[MessageKind::PodStatusReport],
            UpChannel::Events => &[MessageKind::PodEventReport],
            UpChannel::Resync => &[MessageKind::ResyncRequest],
            UpChannel::Logs(_) => &[MessageKind::LogChunk],
            UpChannel::Stats => &[MessageKind::NodeStats],
            UpChannel::LogTail => &[MessageKind::LogTailReport],
            UpChannel::Stream(_) => &[
                MessageKind::StreamOpened,
                MessageKind::StreamData,
                MessageKind::StreamCredit,
                MessageKind::StreamClose,
            ],
            UpChannel::AgentUpdate => &[
                MessageKind::AgentUpdateFetch,
                MessageKind::AgentUpdateStatus,
            ],
            UpChannel::Prepull => &[MessageKind::ImagePrepullStatus],
        },
        Topic::Down { channel, .. } => match channel {
            DownChannel::Desired => &[MessageKind::DesiredSet],
            DownChannel::Resync => &[MessageKind::ResyncRequest],
            DownChannel::Retire => &[MessageKind::RetireOrder],
            DownChannel::AgentUpdate => {
                &[MessageKind::AgentUpdateOrder, MessageKind::AgentUpdateChunk]
            }
            DownChannel::Prepull => &[MessageKind::ImagePrepullSet],
            DownChannel::Logs(_) => &[MessageKind::LogRequest, MessageKind::LogCancel],
            DownChannel::Stream(_) => &[
                MessageKind::StreamOpen,
                MessageKind::StreamData,
                MessageKind::StreamCredit,
                MessageKind::StreamResize,
                MessageKind::StreamClose,
            ],
        },
    }
}

fn envelope<T: Serialize>(kind: MessageKind, body: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(&EnvelopeOut {
        protocol: PROTOCOL_VERSION,
        kind: kind.as_str(),
        body,
    })
    .map_err(|e| EncodeError::Serialize {
        kind,
        error: e.to_string(),
    })
}
