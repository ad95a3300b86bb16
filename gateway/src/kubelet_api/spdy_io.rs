//! The I/O half of a SPDY connection shared by exec/attach and port-forward: the pure
//! [`Session`] over the upgraded connection, read and written in a thin async layer.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::device_streams::StreamEvent;
use crate::stream_protocols::spdy_session::{Session, SessionConfig, SessionError};

/// Bytes read from the client at once.
const READ_CHUNK: usize = 32 * 1024;

/// Why a connection ended on the client's side.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionError {
    #[error("the client closed the connection")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// What woke a connection's loop.
pub(super) enum Step<T = ()> {
    /// The client sent something (or went away).
    Client(Result<T, ConnectionError>),
    /// A message about one of its device streams.
    Device(Option<StreamEvent>),
    /// A deadline passed (open, idle).
    Timer,
    /// The device flooded the connection.
    Broken,
    /// The gateway shuts down.
    Shutdown,
}

/// One upgraded connection with its SPDY session.
pub(super) struct SpdyConnection<IO> {
    reader: ReadHalf<IO>,
    writer: WriteHalf<IO>,
    pub session: Session,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl<IO: AsyncRead + AsyncWrite> SpdyConnection<IO> {
    pub fn new(io: IO) -> Result<Self, SessionError> {
        let (reader, writer) = tokio::io::split(io);
        Ok(Self {
            reader,
            writer,
            session: Session::new(SessionConfig::default())?,
            buf: vec![0; READ_CHUNK],
            out: Vec::new(),
        })
    }

    /// Reads what the client sent and feeds it to the session (cancel-safe: nothing is
    /// lost if the future is dropped before it completes).
    pub async fn read(&mut self) -> Result<(), ConnectionError> {
        let n = self.reader.read(&mut self.buf).await?;
        if n == 0 {
            return Err(ConnectionError::Closed);
        }
        self.session.receive(&self.buf[..n])?;
        Ok(())
    }

    /// Writes every frame the session has queued; returns once the client has them.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        self.out.clear();
        self.session.write_output(&mut self.out)?;
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.writer.flush().await?;
        }
        Ok(())
    }

    /// After the last frame: waits (at most `grace`) for the client to close, answering
    /// its pings, then shuts the connection down.
    pub async fn linger(mut self, grace: Duration) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(grace, async {
            while self.read().await.is_ok() {
                if self.flush().await.is_err() {
                    break;
                }
            }
        })
        .await;
        let _ = self.writer.shutdown().await;
    }
}
