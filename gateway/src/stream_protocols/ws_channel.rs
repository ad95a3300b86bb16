//! The Kubernetes channel protocol inside WebSocket messages (`channel.k8s.io` family),
//! used by exec/attach/port-forward when the API server talks WebSocket to the kubelet
//! (`ExtendWebSocketsToKubelet`): the first byte of each message names the channel; in
//! `v5.channel.k8s.io` channel 255 carries a half-close of the channel named by the
//! next byte. The base64 variants prefix the channel as an ASCII digit and base64 the
//! payload. WebSocket framing itself is not here.

use base64::Engine;

pub const CHANNEL_PROTOCOL: &str = "channel.k8s.io";
pub const BASE64_CHANNEL_PROTOCOL: &str = "base64.channel.k8s.io";
pub const V4_CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";
pub const V4_BASE64_CHANNEL_PROTOCOL: &str = "v4.base64.channel.k8s.io";
pub const V5_CHANNEL_PROTOCOL: &str = "v5.channel.k8s.io";
/// Remote-command protocols offered on WebSocket, preferred first.
pub const REMOTE_COMMAND_WS_PROTOCOLS: &[&str] = &[
    V5_CHANNEL_PROTOCOL,
    V4_CHANNEL_PROTOCOL,
    V4_BASE64_CHANNEL_PROTOCOL,
    CHANNEL_PROTOCOL,
    BASE64_CHANNEL_PROTOCOL,
];

/// Remote-command channel numbers.
pub mod channel {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const RESIZE: u8 = 4;
    /// v5 only: "the channel in the next byte is closed".
    pub const CLOSE: u8 = 255;
}

/// How messages of a negotiated sub-protocol are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCodec {
    base64: bool,
    close_signal: bool,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMessage {
    Data {
        channel: u8,
        payload: Vec<u8>,
    },
    /// v5: the peer will send nothing more on `channel` (e.g. stdin reached EOF).
    Close {
        channel: u8,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("unknown channel sub-protocol {0:?}")]
    UnknownProtocol(String),
    #[error("close signal must carry exactly one channel byte, got {0}")]
    BadCloseSignal(usize),
    #[error("close signals exist only in v5.channel.k8s.io")]
    CloseNotSupported,
    #[error("base64 channel prefix {0:#04x} is not a digit")]
    BadBase64Channel(u8),
    #[error("base64 payload is invalid: {0}")]
    BadBase64(String),
    #[error("channel {0} cannot be written in the base64 protocol")]
    ChannelOutOfRange(u8),
}

impl ChannelCodec {
    /// The codec of a negotiated WebSocket sub-protocol (`""` is the binary default).
    pub fn for_protocol(protocol: &str) -> Result<Self, ChannelError> {
        let (base64, close_signal) = match protocol {
            "" | CHANNEL_PROTOCOL | V4_CHANNEL_PROTOCOL => (false, false),
            BASE64_CHANNEL_PROTOCOL | V4_BASE64_CHANNEL_PROTOCOL => (true, false),
            V5_CHANNEL_PROTOCOL => (false, true),
            other => return Err(ChannelError::UnknownProtocol(other.to_owned())),
        };
        Ok(Self {
            base64,
            close_signal,
        })
    }

    /// Whether the WebSocket message type is binary (else text).
    pub fn binary(&self) -> bool {
        !self.base64
    }

    /// Whether [`ChannelMessage::Close`] can be sent and received.
    pub fn supports_close(&self) -> bool {
        self.close_signal
    }

    /// Decodes one WebSocket message payload; empty messages are ignored (`None`), as
    /// the kubelet does.
    pub fn decode(&self, message: &[u8]) -> Result<Option<ChannelMessage>, ChannelError> {
        let Some((&first, rest)) = message.split_first() else {
            return Ok(None);
        };
        if self.close_signal && first == channel::CLOSE {
            return match rest {
                [closed] => Ok(Some(ChannelMessage::Close { channel: *closed })),
                _ => Err(ChannelError::BadCloseSignal(rest.len())),
            };
        }
        if self.base64 {
            if !first.is_ascii_digit() {
                return Err(ChannelError::BadBase64Channel(first));
            }
            let payload = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|e| ChannelError::BadBase64(e.to_string()))?;
            return Ok(Some(ChannelMessage::Data {
                channel: first - b'0',
                payload,
            }));
        }
        Ok(Some(ChannelMessage::Data {
            channel: first,
            payload: rest.to_vec(),
        }))
    }

    /// The message payload carrying `payload` on `channel`.
    pub fn encode_data(&self, channel: u8, payload: &[u8]) -> Result<Vec<u8>, ChannelError> {
        if self.base64 {
            if channel > 9 {
                return Err(ChannelError::ChannelOutOfRange(channel));
            }
            let mut out = vec![b'0' + channel];
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(payload)
                    .as_bytes(),
            );
            return Ok(out);
        }
        let mut out = Vec::with_capacity(payload.len() + 1);
        out.push(channel);
        out.extend_from_slice(payload);
        Ok(out)
    }

    /// The v5 message half-closing `channel`.
    pub fn encode_close(&self, channel: u8) -> Result<Vec<u8>, ChannelError> {
        if !self.close_signal {
            return Err(ChannelError::CloseNotSupported);
        }
        Ok(vec![channel::CLOSE, channel])
    }
}

#[cfg(test)]
mod tests;
