//! The WebSocket side of exec and attach ([`ExecClient`] over a WebSocket): what an API
//! server sends when it passes WebSockets through to the kubelet
//! (`ExtendWebSocketsToKubelet`), or a client calling the kubelet API directly. Channel
//! messages of `v5.channel.k8s.io`, `v4.channel.k8s.io` or `v4.base64.channel.k8s.io`
//! ([`ChannelCodec`]): stdin (0), stdout (1), stderr (2), the status on the error
//! channel (3), resize (4), and in v5 the close signal that ends stdin.

use std::time::Duration;

use edge_protocol::{StreamChannel, TerminalSize};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::Role;
use tungstenite::protocol::frame::{CloseFrame, coding::CloseCode};

use super::exec_relay::{ClientEvent, ExecClient};
use super::spdy_io::ConnectionError;
use crate::stream_protocols::remote_command::{ExitStatus, ResizeDecoder, status_json};
use crate::stream_protocols::ws_channel::{
    ChannelCodec, ChannelError, ChannelMessage, V4_BASE64_CHANNEL_PROTOCOL, V4_CHANNEL_PROTOCOL,
    V5_CHANNEL_PROTOCOL, channel,
};

/// The remote-command sub-protocols served on WebSocket, preferred first (those with
/// the status on the error channel).
pub const WS_PROTOCOLS: &[&str] = &[
    V5_CHANNEL_PROTOCOL,
    V4_CHANNEL_PROTOCOL,
    V4_BASE64_CHANNEL_PROTOCOL,
];

/// How long a finished connection waits for the client's close.
const LINGER: Duration = Duration::from_secs(5);

/// An exec or attach client on WebSocket.
pub(super) struct WsExecClient<IO> {
    ws: WebSocketStream<IO>,
    codec: ChannelCodec,
    resize: ResizeDecoder,
    pending: Vec<Message>,
    ready_told: bool,
}

fn ws_error(e: tungstenite::Error) -> ConnectionError {
    match e {
        tungstenite::Error::Io(e) => ConnectionError::Io(e),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ConnectionError::Closed
        }
        other => ConnectionError::Io(std::io::Error::other(other)),
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> WsExecClient<IO> {
    /// The client of an upgraded connection that negotiated `protocol`.
    pub async fn new(io: IO, protocol: &str) -> Result<Self, ChannelError> {
        let codec = ChannelCodec::for_protocol(protocol)?;
        Ok(Self {
            ws: WebSocketStream::from_raw_socket(io, Role::Server, None).await,
            codec,
            resize: ResizeDecoder::default(),
            pending: Vec::new(),
            ready_told: false,
        })
    }

    fn message(&self, payload: Vec<u8>) -> Message {
        if self.codec.binary() {
            Message::Binary(payload.into())
        } else {
            Message::Text(String::from_utf8_lossy(&payload).into_owned().into())
        }
    }

    fn on_payload(&mut self, payload: &[u8], out: &mut Vec<ClientEvent>) {
        match self.codec.decode(payload) {
            Ok(Some(ChannelMessage::Data { channel, payload })) => match channel {
                channel::STDIN => out.push(ClientEvent::Stdin(payload)),
                channel::RESIZE => match self.resize.push(&payload) {
                    Ok(sizes) => out.extend(sizes.into_iter().map(|s| {
                        ClientEvent::Resize(TerminalSize {
                            width: s.width,
                            height: s.height,
                        })
                    })),
                    Err(e) => tracing::debug!(error = %e, "bad resize message"),
                },
                _ => {}
            },
            Ok(Some(ChannelMessage::Close { channel })) if channel == channel::STDIN => {
                out.push(ClientEvent::StdinEnd);
            }
            Ok(_) => {}
            Err(e) => out.push(ClientEvent::Gone(e.to_string())),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> ExecClient for WsExecClient<IO> {
    async fn read(&mut self) -> Result<Vec<ClientEvent>, ConnectionError> {
        // no streams to wait for: the device can be asked at once
        if !std::mem::replace(&mut self.ready_told, true) {
            return Ok(vec![ClientEvent::Ready]);
        }
        let message = match self.ws.next().await {
            None => return Err(ConnectionError::Closed),
            Some(Err(e)) => return Err(ws_error(e)),
            Some(Ok(m)) => m,
        };
        let mut out = Vec::new();
        match message {
            Message::Binary(b) => self.on_payload(&b, &mut out),
            Message::Text(t) => self.on_payload(t.as_bytes(), &mut out),
            Message::Close(_) => return Err(ConnectionError::Closed),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        Ok(out)
    }

    async fn flush(&mut self) -> Result<(), ConnectionError> {
        for message in std::mem::take(&mut self.pending) {
            self.ws.feed(message).await.map_err(ws_error)?;
        }
        self.ws.flush().await.map_err(ws_error)
    }

    fn output(&mut self, channel: StreamChannel, data: &[u8], _end: bool) {
        let number = match channel {
            StreamChannel::Stderr => channel::STDERR,
            _ => channel::STDOUT,
        };
        if data.is_empty() {
            return;
        }
        if let Ok(payload) = self.codec.encode_data(number, data) {
            let message = self.message(payload);
            self.pending.push(message);
        }
    }

    fn finish(&mut self, status: &ExitStatus) {
        if let Ok(payload) = self.codec.encode_data(channel::ERROR, &status_json(status)) {
            let message = self.message(payload);
            self.pending.push(message);
        }
        self.pending.push(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })));
    }

    fn go_away(&mut self) {}

    async fn linger(mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(message)) = self.ws.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        let _ = self.ws.close(None).await;
    }
}
