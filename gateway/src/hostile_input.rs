//! Hostile or broken input from devices: counted always, logged once per device (or
//! topic) per rate-limit window, then dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::metrics::Metrics;

/// Sources remembered at most.
pub const MAX_SOURCES: usize = 10_000;
/// Characters of a source (a device id, or a topic that named none) used as its key.
pub const MAX_SOURCE_CHARS: usize = 128;

/// Why a message from a device was dropped. [`RejectReason::as_str`] is the `reason`
/// label of `edge_gateway_rejected_messages_total` and the `reason` field of the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The topic is not one of the protocol's.
    BadTopic,
    /// A `down/` topic: the gateway only reads `up/` ones.
    UnexpectedDirection,
    /// Over the protocol's size limit (a message, or a log chunk).
    Oversized,
    /// A protocol version the gateway does not speak, or none.
    WrongVersion,
    /// A message kind that does not belong on its topic.
    WrongTopic,
    /// Not a valid message.
    Malformed,
    /// From a device whose certificate was revoked.
    Revoked,
    /// About a pod or log request of another device.
    Spoofed,
    /// Log chunks faster than the kubelet API client reads them.
    LogOverflow,
    /// A hello from a device outside `--allow-device`, revoked, or while the revocation
    /// list cannot be read.
    NotAdmitted,
    /// An extended resource of a hello that was left out.
    BadResource,
    /// A hello whose capacity cannot be a Node's.
    BadCapacity,
    /// A device named like a Node the gateway does not manage.
    NodeNotOwned,
    /// A message from a device that has not said hello (counted, not logged).
    UnknownDevice,
    /// A log tail of a pod or container the gateway does not know on that device, or of
    /// a pod that opted out of the log cache.
    UnknownPod,
    /// A stream message for a stream that is not open (ended, or never opened).
    UnknownStream,
    /// Stream messages faster than the kubelet API client reads them: the stream broke.
    StreamOverflow,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadTopic => "bad_topic",
            RejectReason::UnexpectedDirection => "unexpected_direction",
            RejectReason::Oversized => "oversized",
            RejectReason::WrongVersion => "wrong_version",
            RejectReason::WrongTopic => "wrong_topic",
            RejectReason::Malformed => "malformed",
            RejectReason::Revoked => "revoked",
            RejectReason::Spoofed => "spoofed",
            RejectReason::LogOverflow => "log_overflow",
            RejectReason::NotAdmitted => "not_admitted",
            RejectReason::BadResource => "bad_resource",
            RejectReason::BadCapacity => "bad_capacity",
            RejectReason::NodeNotOwned => "node_not_owned",
            RejectReason::UnknownDevice => "unknown_device",
            RejectReason::UnknownPod => "unknown_pod",
            RejectReason::UnknownStream => "unknown_stream",
            RejectReason::StreamOverflow => "stream_overflow",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dropped message: where it came from (a device id, or the topic when it named
/// none), why, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub source: String,
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(source: impl Into<String>, reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            reason,
            detail: detail.into(),
        }
    }
}

/// Counts every rejection and logs the first one per source and window; shared by the
/// MQTT link (frames that do not decode) and the fleet's runner (messages the fleet
/// refuses), so one source gets one log line per window whoever dropped its message.
#[derive(Debug)]
pub struct Rejections {
    metrics: Arc<Metrics>,
    log: Mutex<RejectionLog>,
}

impl Rejections {
    pub fn new(metrics: Arc<Metrics>, window: Duration) -> Self {
        Self {
            metrics,
            log: Mutex::new(RejectionLog::new(window)),
        }
    }

    /// Counts, logs (rate limited per source) and drops a bad message.
    pub fn reject(&self, rejection: &Rejection) {
        let Rejection {
            source,
            reason,
            detail,
        } = rejection;
        self.metrics.rejected(reason.as_str());
        let log = self
            .log
            .lock()
            .map(|mut r| r.should_log(source, Instant::now()))
            .unwrap_or(false);
        if log {
            warn!(
                source = source.as_str(),
                reason = reason.as_str(),
                detail = detail.as_str(),
                "dropped a message (further ones from this source are counted, not logged, for a while)"
            );
        }
    }

    /// Counts a dropped message without logging it.
    pub fn count(&self, reason: RejectReason) {
        self.metrics.rejected(reason.as_str());
    }
}

/// Decides which rejections get a log line.
#[derive(Debug)]
pub struct RejectionLog {
    window: Duration,
    last_logged: HashMap<String, Instant>,
    next_prune: Option<Instant>,
}

impl RejectionLog {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_logged: HashMap::new(),
            next_prune: None,
        }
    }

    /// Whether a rejection from `source` at `now` should be logged (the first one per
    /// window). Memory is bounded: sources whose window passed are forgotten, at most
    /// [`MAX_SOURCES`] are remembered (beyond that, new sources are counted, not logged,
    /// until the window frees room), and a source is keyed by its first
    /// [`MAX_SOURCE_CHARS`] characters.
    pub fn should_log(&mut self, source: &str, now: Instant) -> bool {
        let key: String = source.chars().take(MAX_SOURCE_CHARS).collect();
        if let Some(t) = self.last_logged.get(&key) {
            if now.saturating_duration_since(*t) < self.window {
                return false;
            }
        }
        if self.last_logged.len() >= MAX_SOURCES && !self.last_logged.contains_key(&key) {
            // prune at most a few times per window: a flood must not make every
            // rejection a scan of the whole map
            if self.next_prune.is_none_or(|t| now >= t) {
                let window = self.window;
                self.last_logged
                    .retain(|_, t| now.saturating_duration_since(*t) < window);
                self.next_prune = Some(now + window / 8);
            }
            if self.last_logged.len() >= MAX_SOURCES {
                return false;
            }
        }
        self.last_logged.insert(key, now);
        true
    }

    pub fn remembered(&self) -> usize {
        self.last_logged.len()
    }
}

#[cfg(test)]
mod tests;
