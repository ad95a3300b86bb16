//! A WebSocket as a byte stream: the `SPDY/3.1+portforward.k8s.io` tunnel, in which the
//! API server (with `ExtendWebSocketsToKubelet`) or a client sends the SPDY/3.1 bytes of a
//! port-forward in binary messages. Reading yields the messages' payloads in order;
//! writing sends each buffer as one binary message; a close message is the end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::Role;

/// The WebSocket sub-protocol of the port-forward tunnel.
pub const PORT_FORWARD_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The server side of an upgraded connection that negotiated the tunnel.
pub(super) struct WsTunnel<IO> {
    ws: WebSocketStream<IO>,
    /// What is left of the last binary message read.
    pending: Vec<u8>,
    offset: usize,
    ended: bool,
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::from(io::ErrorKind::BrokenPipe)
        }
        other => io::Error::other(other),
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> WsTunnel<IO> {
    pub async fn new(io: IO) -> Self {
        Self {
            ws: WebSocketStream::from_raw_socket(io, Role::Server, None).await,
            pending: Vec::new(),
            offset: 0,
            ended: false,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsTunnel<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.offset < self.pending.len() {
                let n = buf.remaining().min(self.pending.len() - self.offset);
                let start = self.offset;
                buf.put_slice(&self.pending[start..start + n]);
                self.offset += n;
                return Poll::Ready(Ok(()));
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => {
                    self.pending = data.to_vec();
                    self.offset = 0;
                }
                // pings are answered by tungstenite on the next write or flush
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message in a SPDY tunnel",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => self.ended = true,
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsTunnel<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(to_io)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(data.to_vec().into()))
            .map_err(to_io)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }
}
