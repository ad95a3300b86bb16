//! Topic names: formatting and parsing, both directions.
//!
//! Every topic is `edge/v1/{device}/up/...` (device to gateway) or
//! `edge/v1/{device}/down/...` (gateway to device), so the broker ACL
//! "a device writes only `edge/v1/<id>/up/#` and reads only `edge/v1/<id>/down/#`"
//! isolates devices from each other.

use std::fmt;
use std::str::FromStr;

use crate::device_id::{DeviceId, DeviceIdError};
use crate::request_id::{RequestId, RequestIdError};

/// First level of every topic.
pub const TOPIC_ROOT: &str = "edge";
/// Second level: the protocol's major version.
pub const TOPIC_VERSION: &str = "v1";

/// MQTT delivery guarantee for a channel. Mirrors MQTT QoS without depending on a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
}

/// Why a string is not one of our topics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {topic:?} does not start with \"{TOPIC_ROOT}/\"")]
    NotOurs { topic: String },
    #[error("topic {topic:?} uses protocol {found:?}; this build speaks {TOPIC_VERSION}")]
    UnsupportedVersion { topic: String, found: String },
    #[error("topic {topic:?} names an invalid device: {source}")]
    InvalidDevice {
        topic: String,
        #[source]
        source: DeviceIdError,
    },
    #[error("topic {topic:?} names an invalid request id: {source}")]
    InvalidRequest {
        topic: String,
        #[source]
        source: RequestIdError,
    },
    #[error(
        "topic {topic:?} is not a known channel (expected up/... or down/... after the device)"
    )]
    UnknownChannel { topic: String },
}

/// Device-to-gateway channels (`edge/v1/{device}/up/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpChannel {
    /// `up/hello`: the node report, on connect and whenever it changes.
    Hello,
    /// `up/heartbeat`: liveness at the configured interval.
    Heartbeat,
    /// `up/state`: online/offline; retained; the agent's last will publishes offline.
    State,
    /// `up/status`: pod status reports.
    Status,
    /// `up/events`: pod events (Pulling, Started, BackOff, ...).
    Events,
    /// `up/resync`: the device asks for its whole desired set.
    Resync,
    /// `up/logs/{request}`: log chunks answering a log request.
    Logs(RequestId),
    /// `up/stats`: resource usage samples.
    Stats,
    /// `up/logtail`: new output of the device's containers, for the offline log cache.
    LogTail,
    /// `up/stream/{stream}`: the device's side of an exec, attach or port-forward.
    Stream(RequestId),
    /// `up/agent-update`: chunk fetches and progress of an agent update (protocol 1.4).
    AgentUpdate,
    /// `up/prepull`: progress of the image pre-pull set (protocol 1.5).
    Prepull,
}

/// Gateway-to-device channels (`edge/v1/{device}/down/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DownChannel {
    /// `down/desired`: the whole desired set with its generation.
    Desired,
    /// `down/resync`: the gateway asks the device for its node report and a full status report.
    Resync,
    /// `down/logs/{request}`: a log request or its cancel.
    Logs(RequestId),
    /// `down/stream/{stream}`: the gateway's side of an exec, attach or port-forward.
    Stream(RequestId),
    /// `down/retire`: the device was retired; it wipes itself and stops (protocol 1.3).
    Retire,
    /// `down/agent-update`: an agent update order and the binary's chunks (protocol 1.4).
    AgentUpdate,
    /// `down/prepull`: the images the device should pull ahead and keep (protocol 1.5).
    Prepull,
}

impl UpChannel {
    pub fn qos(&self) -> Qos {
        match self {
            UpChannel::Heartbeat | UpChannel::Logs(_) | UpChannel::Stats | UpChannel::LogTail => {
                Qos::AtMostOnce
            }
            _ => Qos::AtLeastOnce,
        }
    }

    /// Whether messages on this channel are published with the retain flag.
    pub fn retained(&self) -> bool {
        matches!(self, UpChannel::State)
    }
}

impl DownChannel {
    pub fn qos(&self) -> Qos {
        Qos::AtLeastOnce
    }

    /// Desired sets are not retained: they may hold secrets, and a device resyncs instead.
    pub fn retained(&self) -> bool {
        false
    }
}

/// One of our topics, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Up {
        device: DeviceId,
        channel: UpChannel,
    },
    Down {
        device: DeviceId,
        channel: DownChannel,
    },
}

impl Topic {
    pub fn up(device: &DeviceId, channel: UpChannel) -> Self {
        Topic::Up {
            device: device.clone(),
            channel,
        }
    }

    pub fn down(device: &DeviceId, channel: DownChannel) -> Self {
        Topic::Down {
            device: device.clone(),
            channel,
        }
    }

    pub fn device(&self) -> &DeviceId {
        match self {
            Topic::Up { device, .. } | Topic::Down { device, .. } => device,
        }
    }

    pub fn qos(&self) -> Qos {
        match self {
            Topic::Up { channel, .. } => channel.qos(),
            Topic::Down { channel, .. } => channel.qos(),
        }
    }

    pub fn retained(&self) -> bool {
        match self {
            Topic::Up { channel, .. } => channel.retained(),
            Topic::Down { channel, .. } => channel.retained(),
        }
    }

    /// Parses a topic string. Never panics, whatever the input.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let err_topic = || topic.to_owned();
        let mut levels = topic.split('/');
        if levels.next() != Some(TOPIC_ROOT) {
            return Err(TopicError::NotOurs { topic: err_topic() });
        }
        match levels.next() {
            Some(TOPIC_VERSION) => {}
            Some(found) => {
                return Err(TopicError::UnsupportedVersion {
                    topic: err_topic(),
                    found: found.to_owned(),
                });
            }
            None => return Err(TopicError::NotOurs { topic: err_topic() }),
        }
        let device = DeviceId::new(levels.next().unwrap_or_default()).map_err(|source| {
            TopicError::InvalidDevice {
                topic: err_topic(),
                source,
            }
        })?;
        let direction = levels.next();
        let name = levels.next();
        let arg = levels.next();
        if levels.next().is_some() {
            return Err(TopicError::UnknownChannel { topic: err_topic() });
        }
        let request = |raw: &str| {
            RequestId::new(raw).map_err(|source| TopicError::InvalidRequest {
                topic: err_topic(),
                source,
            })
        };
        let unknown = || TopicError::UnknownChannel { topic: err_topic() };
        let parsed = match (direction, name, arg) {
            (Some("up"), Some("hello"), None) => Topic::Up {
                device,
                channel: UpChannel::Hello,
            },
            (Some("up"), Some("heartbeat"), None) => Topic::Up {
                device,
                channel: UpChannel::Heartbeat,
            },
            (Some("up"), Some("state"), None) => Topic::Up {
                device,
                channel: UpChannel::State,
            },
            (Some("up"), Some("status"), None) => Topic::Up {
                device,
                channel: UpChannel::Status,
            },
            (Some("up"), Some("events"), None) => Topic::Up {
                device,
                channel: UpChannel::Events,
            },
            (Some("up"), Some("resync"), None) => Topic::Up {
                device,
                channel: UpChannel::Resync,
            },
            (Some("up"), Some("logs"), Some(id)) => Topic::Up {
                device,
                channel: UpChannel::Logs(request(id)?),
            },
            (Some("up"), Some("stats"), None) => Topic::Up {
                device,
                channel: UpChannel::Stats,
            },
            (Some("up"), Some("logtail"), None) => Topic::Up {
                device,
                channel: UpChannel::LogTail,
            },
            (Some("up"), Some("stream"), Some(id)) => Topic::Up {
                device,
                channel: UpChannel::Stream(request(id)?),
            },
            (Some("up"), Some("agent-update"), None) => Topic::Up {
                device,
                channel: UpChannel::AgentUpdate,
            },
            (Some("down"), Some("agent-update"), None) => Topic::Down {
                device,
                channel: DownChannel::AgentUpdate,
            },
            (Some("up"), Some("prepull"), None) => Topic::Up {
                device,
                channel: UpChannel::Prepull,
            },
            (Some("down"), Some("prepull"), None) => Topic::Down {
                device,
                channel: DownChannel::Prepull,
            },
            (Some("down"), Some("desired"), None) => Topic::Down {
                device,
                channel: DownChannel::Desired,
            },
            (Some("down"), Some("resync"), None) => Topic::Down {
                device,
                channel: DownChannel::Resync,
            },
            (Some("down"), Some("retire"), None) => Topic::Down {
                device,
                channel: DownChannel::Retire,
            },
            (Some("down"), Some("logs"), Some(id)) => Topic::Down {
                device,
                channel: DownChannel::Logs(request(id)?),
            },
            (Some("down"), Some("stream"), Some(id)) => Topic::Down {
                device,
                channel: DownChannel::Stream(request(id)?),
            },
            _ => return Err(unknown()),
        };
        Ok(parsed)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOPIC_ROOT}/{TOPIC_VERSION}/{}/", self.device())?;
        match self {
            Topic::Up { channel, .. } => match channel {
                UpChannel::Hello => f.write_str("up/hello"),
                UpChannel::Heartbeat => f.write_str("up/heartbeat"),
                UpChannel::State => f.write_str("up/state"),
                UpChannel::Status => f.write_str("up/status"),
                UpChannel::Events => f.write_str("up/events"),
                UpChannel::Resync => f.write_str("up/resync"),
                UpChannel::Logs(id) => write!(f, "up/logs/{id}"),
                UpChannel::Stats => f.write_str("up/stats"),
                UpChannel::LogTail => f.write_str("up/logtail"),
                UpChannel::Stream(id) => write!(f, "up/stream/{id}"),
                UpChannel::AgentUpdate => f.write_str("up/agent-update"),
                UpChannel::Prepull => f.write_str("up/prepull"),
            },
            Topic::Down { channel, .. } => match channel {
                DownChannel::Desired => f.write_str("down/desired"),
                DownChannel::Resync => f.write_str("down/resync"),
                DownChannel::Logs(id) => write!(f, "down/logs/{id}"),
                DownChannel::Stream(id) => write!(f, "down/stream/{id}"),
                DownChannel::Retire => f.write_str("down/retire"),
                DownChannel::AgentUpdate => f.write_str("down/agent-update"),
                DownChannel::Prepull => f.write_str("down/prepull"),
            },
        }
    }
}

impl FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::parse(s)
    }
}

/// The filter the gateway subscribes to: everything every device sends.
pub fn gateway_subscription() -> String {
    format!("{TOPIC_ROOT}/{TOPIC_VERSION}/+/up/#")
}

/// The filter a device subscribes to: everything addressed to it.
pub fn device_subscription(device: &DeviceId) -> String {
    format!("{TOPIC_ROOT}/{TOPIC_VERSION}/{device}/down/#")
}

/// Mosquitto ACL pattern lines (`%u` = the identity from the client certificate) that
/// isolate devices: each may write only its own `up/#` and read only its own `down/#`.
pub fn device_acl_patterns() -> [String; 2] {
    [
        format!("pattern write {TOPIC_ROOT}/{TOPIC_VERSION}/%u/up/#"),
        format!("pattern read {TOPIC_ROOT}/{TOPIC_VERSION}/%u/down/#"),
    ]
}

#[cfg(test)]
mod tests;
