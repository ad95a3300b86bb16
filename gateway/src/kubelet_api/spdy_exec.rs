//! The SPDY side of exec and attach ([`ExecClient`] over a [`SpdyConnection`]): the
//! client's stream set (error, stdin, stdout, stderr, resize) collected, stdin, its end
//! and terminal sizes read, the process's output written on its streams, the exit
//! status on the error stream.

use std::time::Duration;

use edge_protocol::{StreamChannel, TerminalSize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::exec_relay::{ClientEvent, ExecClient};
use super::spdy_io::{ConnectionError, SpdyConnection};
use crate::stream_protocols::remote_command::{
    ExecOptions, ExecStreamSet, ExecStreams, ExitStatus, ResizeDecoder, status_json,
};
use crate::stream_protocols::spdy_frame::GoAwayStatus;
use crate::stream_protocols::spdy_headers::HeaderBlock;
use crate::stream_protocols::spdy_session::{SessionError, SessionEvent};

/// How long a finished connection waits for the client to close it.
const LINGER: Duration = Duration::from_secs(5);

/// An exec or attach client on SPDY.
pub(super) struct SpdyExecClient<IO> {
    conn: SpdyConnection<IO>,
    set: ExecStreamSet,
    ids: Option<ExecStreams>,
    resize: ResizeDecoder,
}

impl<IO: AsyncRead + AsyncWrite> SpdyExecClient<IO> {
    pub fn new(io: IO, options: &ExecOptions) -> Result<Self, SessionError> {
        Ok(Self {
            conn: SpdyConnection::new(io)?,
            set: ExecStreamSet::new(options),
            ids: None,
            resize: ResizeDecoder::default(),
        })
    }

    fn on_event(&mut self, event: SessionEvent, out: &mut Vec<ClientEvent>) {
        match event {
            SessionEvent::StreamOpened { stream_id, headers } => {
                let session = &mut self.conn.session;
                if session
                    .reply(stream_id, &HeaderBlock::new(), false)
                    .is_err()
                {
                    return;
                }
                match self.set.accept(stream_id, &headers) {
                    Ok(Some(all)) => {
                        self.ids = Some(all);
                        out.push(ClientEvent::Ready);
                    }
                    Ok(None) => {}
                    Err(e) => out.push(ClientEvent::Gone(e.to_string())),
                }
            }
            SessionEvent::Data { stream_id, data } => {
                let Some(all) = self.ids else { return };
                if Some(stream_id) == all.stdin {
                    out.push(ClientEvent::Stdin(data));
                } else if Some(stream_id) == all.resize {
                    match self.resize.push(&data) {
                        Ok(sizes) => out.extend(sizes.into_iter().map(|s| {
                            ClientEvent::Resize(TerminalSize {
                                width: s.width,
                                height: s.height,
                            })
                        })),
                        Err(e) => tracing::debug!(error = %e, "bad resize message"),
                    }
                }
            }
            SessionEvent::RemoteFinished { stream_id }
                if self.ids.is_some_and(|all| Some(stream_id) == all.stdin) =>
            {
                out.push(ClientEvent::StdinEnd);
            }
            SessionEvent::StreamReset { .. } | SessionEvent::GoAway { .. } => {
                out.push(ClientEvent::Gone("the client went away".to_owned()));
            }
            _ => {}
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Send> ExecClient for SpdyExecClient<IO> {
    async fn read(&mut self) -> Result<Vec<ClientEvent>, ConnectionError> {
        self.conn.read().await?;
        let mut out = Vec::new();
        while let Some(event) = self.conn.session.poll_event() {
            self.on_event(event, &mut out);
        }
        Ok(out)
    }

    async fn flush(&mut self) -> Result<(), ConnectionError> {
        self.conn.flush().await
    }

    fn output(&mut self, channel: StreamChannel, data: &[u8], end: bool) {
        let Some(all) = self.ids else { return };
        let target = match channel {
            StreamChannel::Stderr => all.stderr.or(all.stdout),
            _ => all.stdout.or(all.stderr),
        };
        let Some(stream_id) = target else { return };
        if !data.is_empty() {
            let _ = self.conn.session.send_data(stream_id, data, false);
        }
        if end {
            let _ = self.conn.session.close_stream(stream_id);
        }
    }

    fn finish(&mut self, status: &ExitStatus) {
        let Some(all) = self.ids else { return };
        let session = &mut self.conn.session;
        for id in [all.stdout, all.stderr].into_iter().flatten() {
            let _ = session.close_stream(id);
        }
        let _ = session.send_data(all.error, &status_json(status), true);
        for id in [all.stdin, all.resize].into_iter().flatten() {
            let _ = session.close_stream(id);
        }
    }

    fn go_away(&mut self) {
        self.conn.session.go_away(GoAwayStatus::OK);
    }

    async fn linger(self) {
        self.conn.linger(LINGER).await;
    }
}
