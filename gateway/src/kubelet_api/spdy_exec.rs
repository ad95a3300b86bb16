//! Exec and attach over SPDY, relayed to the device: a thin loop that waits for the
//! client's stream set (error, stdin, stdout, stderr, resize), opens one MQTT stream to
//! the device, and then moves bytes both ways under the stream's flow control
//! ([`StreamFlow`]): stdin is read from the client only while the device has credit to
//! take it, and the device's output is credited once written to the client. The device's
//! [`StreamClose`] becomes the error stream's Status (the exit code `kubectl exec`
//! returns); the client going away, the device going away, the idle timeout and the
//! gateway's shutdown each end the stream on both sides.

use std::time::Duration;

use edge_protocol::{
    RequestId, STREAM_PROTOCOL_VERSION, StdioSelection, StreamChannel, StreamClose,
    StreamErrorCode, StreamOpen, StreamResize, StreamTarget, TerminalSize,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::spdy_io::{ConnectionError, SpdyConnection, Step};
use super::streaming::{RemoteCommand, StreamRequest, StreamSettings};
use crate::device_streams::{
    CONNECTION_EVENT_BUFFER, DeviceStreamMessage, DeviceStreams, EndReason, StreamEvent,
    StreamFlow, StreamKind, gateway_close,
};
use crate::stream_protocols::remote_command::{
    ExecOptions, ExecStreamSet, ExecStreams, ExitStatus, ResizeDecoder, status_json,
};
use crate::stream_protocols::spdy_frame::GoAwayStatus;
use crate::stream_protocols::spdy_headers::HeaderBlock;
use crate::stream_protocols::spdy_session::SessionEvent;

/// How long a finished connection waits for the client to close it.
const LINGER: Duration = Duration::from_secs(5);

/// One exec or attach connection.
pub(super) struct ExecSession {
    pub streams: std::sync::Arc<DeviceStreams>,
    pub request: StreamRequest,
    pub container: String,
    pub kind: RemoteCommand,
    pub options: ExecOptions,
    pub settings: StreamSettings,
    pub shutdown: CancellationToken,
}

/// How the relay ended: why, and the status for the error stream (none when the client
/// is gone).
struct Ending {
    reason: EndReason,
    status: Option<ExitStatus>,
    /// What to tell the device, if it still runs the stream.
    tell_device: Option<StreamClose>,
}

/// The error stream's status for the device's close.
pub(super) fn exit_status(close: &StreamClose) -> ExitStatus {
    match (&close.error, close.exit_code) {
        (Some(e), _) => ExitStatus::Failed(e.message.clone()),
        (None, Some(code)) => ExitStatus::Exited(u8::try_from(code.rem_euclid(256)).unwrap_or(1)),
        (None, None) => ExitStatus::Exited(0),
    }
}

/// The relay's state once the device stream is open.
struct Relay {
    id: RequestId,
    flow: StreamFlow,
    /// Device output queued to the client and not yet credited.
    unflushed: usize,
    /// The device answered the open.
    opened: bool,
}

/// What one connection knows as it goes.
struct ExecState {
    set: ExecStreamSet,
    ids: Option<ExecStreams>,
    relay: Option<Relay>,
    resize: ResizeDecoder,
    /// A terminal size not yet sent to the device.
    size: Option<TerminalSize>,
    tx: mpsc::Sender<StreamEvent>,
    broken: CancellationToken,
    deadline: Instant,
}

impl ExecSession {
    fn stream_kind(&self) -> StreamKind {
        match self.kind {
            RemoteCommand::Exec { .. } => StreamKind::Exec,
            RemoteCommand::Attach => StreamKind::Attach,
        }
    }

    fn target(&self) -> StreamTarget {
        let stdio = StdioSelection {
            stdin: self.options.stdin,
            stdout: self.options.stdout,
            stderr: self.options.stderr,
            tty: self.options.tty,
        };
        let pod = self.request.pod.clone();
        let container = self.container.clone();
        match &self.kind {
            RemoteCommand::Exec { command } => StreamTarget::Exec {
                pod,
                container,
                command: command.clone(),
                stdio,
            },
            RemoteCommand::Attach => StreamTarget::Attach {
                pod,
                container,
                stdio,
            },
        }
    }

    /// Serves the upgraded connection until the stream ends.
    pub async fn run<IO: AsyncRead + AsyncWrite + Send>(self, io: IO) {
        let mut conn = match SpdyConnection::new(io) {
            Ok(c) => c,
            Err(e) => return debug!(error = %e, "cannot start a SPDY session"),
        };
        let (tx, mut rx) = mpsc::channel(CONNECTION_EVENT_BUFFER);
        let device = self.request.device.clone();
        let mut st = ExecState {
            set: ExecStreamSet::new(&self.options),
            ids: None,
            relay: None,
            resize: ResizeDecoder::default(),
            size: None,
            tx,
            broken: CancellationToken::new(),
            deadline: Instant::now() + self.settings.open_timeout,
        };
        let ending = loop {
            // what the last step queued for the client, then credit for what it got
            if let Err(e) = conn.flush().await {
                break self.client_gone(&e);
            }
            if let Some(r) = st.relay.as_mut() {
                if let Some(credit) = r.flow.delivered(std::mem::take(&mut r.unflushed)) {
                    self.streams.send(&device, &r.id, credit);
                }
            }
            let may_read = st.relay.as_ref().is_none_or(|r| !r.flow.input_full());
            let broken = st.broken.clone();
            let step = tokio::select! {
                r = conn.read(), if may_read => Step::Client(r),
                e = rx.recv() => Step::Device(e),
                _ = tokio::time::sleep_until(st.deadline) => Step::Timer,
                _ = broken.cancelled() => Step::Broken,
                _ = self.shutdown.cancelled() => Step::Shutdown,
            };
            let ended = match step {
                Step::Client(Err(e)) => Some(self.client_gone(&e)),
                Step::Client(Ok(())) => {
                    let mut out = None;
                    while let Some(event) = conn.session.poll_event() {
                        if out.is_none() {
                            out = self.on_client(event, &mut conn, &mut st);
                        }
                    }
                    if st.relay.as_ref().is_some_and(|r| r.opened) {
                        st.deadline = Instant::now() + self.settings.idle_timeout;
                    }
                    out
                }
                Step::Device(None) => None,
                Step::Device(Some(event)) => {
                    let out = self.on_device(event, &mut conn, &mut st);
                    if st.relay.as_ref().is_some_and(|r| r.opened) {
                        st.deadline = Instant::now() + self.settings.idle_timeout;
                    }
                    out
                }
                Step::Timer => Some(self.timed_out(st.relay.as_ref())),
                Step::Broken => Some(Ending {
                    reason: EndReason::Protocol,
                    status: Some(ExitStatus::Failed(format!(
                        "node {device} sent more stream messages than the client read"
                    ))),
                    tell_device: Some(gateway_close(
                        StreamErrorCode::Protocol,
                        "too many messages in flight",
                    )),
                }),
                Step::Shutdown => Some(Ending {
                    reason: EndReason::Shutdown,
                    status: Some(ExitStatus::Failed(
                        "the edge gateway is shutting down".into(),
                    )),
                    tell_device: Some(gateway_close(
                        StreamErrorCode::Cancelled,
                        "the edge gateway is shutting down",
                    )),
                }),
            };
            if let Some(ending) = ended {
                break ending;
            }
        };
        if let Some(r) = &st.relay {
            if let Some(close) = ending.tell_device.clone() {
                self.streams.send(&device, &r.id, close);
            }
            self.streams
                .finish(&r.id, self.stream_kind(), ending.reason);
        }
        if let (Some(status), Some(all)) = (&ending.status, st.ids) {
            finish_streams(&mut conn, all, status);
        }
        if ending.reason == EndReason::Shutdown {
            conn.session.go_away(GoAwayStatus::OK);
        }
        debug!(%device, reason = ending.reason.as_str(), "exec stream ended");
        conn.linger(LINGER).await;
    }

    /// Every stream of the client is there: the device is asked to start.
    fn open_device_stream(&self, st: &mut ExecState) {
        let device = &self.request.device;
        let id = self
            .streams
            .open(device, self.stream_kind(), st.tx.clone(), st.broken.clone());
        self.streams.send(
            device,
            &id,
            StreamOpen {
                version: STREAM_PROTOCOL_VERSION,
                target: self.target(),
                terminal_size: st.size.take(),
                window_bytes: StreamFlow::granted_window(),
            },
        );
        st.relay = Some(Relay {
            id,
            flow: StreamFlow::new(StreamChannel::Stdin),
            unflushed: 0,
            opened: false,
        });
        st.deadline = Instant::now() + self.settings.open_timeout;
    }

    fn client_gone(&self, e: &ConnectionError) -> Ending {
        debug!(error = %e, "exec client went away");
        Ending {
            reason: EndReason::Client,
            status: None,
            tell_device: Some(gateway_close(
                StreamErrorCode::Cancelled,
                "the client went away",
            )),
        }
    }

    fn timed_out(&self, relay: Option<&Relay>) -> Ending {
        let device = &self.request.device;
        if relay.is_some_and(|r| r.opened) {
            return Ending {
                reason: EndReason::Idle,
                status: Some(ExitStatus::Failed(format!(
                    "no data for {:?} (--streaming-connection-idle-timeout)",
                    self.settings.idle_timeout
                ))),
                tell_device: Some(gateway_close(
                    StreamErrorCode::IdleTimeout,
                    "idle for longer than the streaming connection idle timeout",
                )),
            };
        }
        let message = if relay.is_some() {
            format!(
                "node {device} did not answer within {:?}: its edge-agent may be busy or disconnecting",
                self.settings.open_timeout
            )
        } else {
            "timed out waiting for the client to create its streams".to_owned()
        };
        Ending {
            reason: EndReason::OpenTimeout,
            status: Some(ExitStatus::Failed(message)),
            tell_device: Some(gateway_close(
                StreamErrorCode::Cancelled,
                "no answer in time",
            )),
        }
    }

    /// One event of the client's session; an ending if it ends the stream.
    fn on_client<IO: AsyncRead + AsyncWrite>(
        &self,
        event: SessionEvent,
        conn: &mut SpdyConnection<IO>,
        st: &mut ExecState,
    ) -> Option<Ending> {
        let device = &self.request.device;
        match event {
            SessionEvent::StreamOpened { stream_id, headers } => {
                if conn
                    .session
                    .reply(stream_id, &HeaderBlock::new(), false)
                    .is_err()
                {
                    return None;
                }
                match st.set.accept(stream_id, &headers) {
                    Ok(Some(all)) => {
                        st.ids = Some(all);
                        self.open_device_stream(st);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        debug!(error = %e, "exec client opened a wrong stream");
                        return Some(Ending {
                            reason: EndReason::Client,
                            status: None,
                            tell_device: Some(gateway_close(
                                StreamErrorCode::BadRequest,
                                e.to_string(),
                            )),
                        });
                    }
                }
            }
            SessionEvent::Data { stream_id, data } => {
                let all = st.ids?;
                if Some(stream_id) == all.stdin {
                    if let Some(r) = st.relay.as_mut() {
                        for frame in r.flow.push_input(&data) {
                            self.streams.send(device, &r.id, frame);
                        }
                    }
                } else if Some(stream_id) == all.resize {
                    match st.resize.push(&data) {
                        Ok(sizes) => {
                            for s in sizes {
                                let size = to_protocol_size(s);
                                match st.relay.as_ref().filter(|r| r.opened) {
                                    Some(r) => {
                                        self.streams.send(device, &r.id, StreamResize { size })
                                    }
                                    None => st.size = Some(size),
                                }
                            }
                        }
                        Err(e) => debug!(error = %e, "bad resize message from the exec client"),
                    }
                }
            }
            SessionEvent::RemoteFinished { stream_id } => {
                let all = st.ids?;
                if Some(stream_id) == all.stdin {
                    if let Some(r) = st.relay.as_mut() {
                        for frame in r.flow.end_input() {
                            self.streams.send(device, &r.id, frame);
                        }
                    }
                }
            }
            SessionEvent::StreamReset { .. } | SessionEvent::GoAway { .. } => {
                return Some(self.client_gone(&ConnectionError::Closed));
            }
            _ => {}
        }
        None
    }

    /// One message of the device; an ending if it ends the stream.
    fn on_device<IO: AsyncRead + AsyncWrite>(
        &self,
        event: StreamEvent,
        conn: &mut SpdyConnection<IO>,
        st: &mut ExecState,
    ) -> Option<Ending> {
        let device = &self.request.device;
        let (r, all) = (st.relay.as_mut()?, st.ids?);
        let message = match event {
            StreamEvent::DeviceGone { reason, .. } => {
                return Some(Ending {
                    reason: EndReason::DeviceGone,
                    status: Some(ExitStatus::Failed(reason)),
                    tell_device: None,
                });
            }
            StreamEvent::Device { message, .. } => message,
        };
        match message {
            DeviceStreamMessage::Opened(o) => {
                r.opened = true;
                for frame in r.flow.opened(o.window_bytes) {
                    self.streams.send(device, &r.id, frame);
                }
                if let Some(size) = st.size.take() {
                    self.streams.send(device, &r.id, StreamResize { size });
                }
            }
            DeviceStreamMessage::Credit(c) => {
                for frame in r.flow.credit(c) {
                    self.streams.send(device, &r.id, frame);
                }
            }
            DeviceStreamMessage::Data(d) => {
                match r.flow.receive(&d) {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        return Some(Ending {
                            reason: EndReason::Protocol,
                            status: Some(ExitStatus::Failed(format!(
                                "node {device} broke the stream protocol: {e}"
                            ))),
                            tell_device: Some(gateway_close(
                                StreamErrorCode::Protocol,
                                e.to_string(),
                            )),
                        });
                    }
                }
                let target = match d.channel {
                    StreamChannel::Stderr => all.stderr.or(all.stdout),
                    _ => all.stdout.or(all.stderr),
                };
                let bytes = d.data.as_slice();
                r.unflushed += bytes.len();
                if let Some(stream_id) = target {
                    if !bytes.is_empty() {
                        let _ = conn.session.send_data(stream_id, bytes, false);
                    }
                    if d.end {
                        let _ = conn.session.close_stream(stream_id);
                    }
                }
            }
            DeviceStreamMessage::Close(close) => {
                let reason = if r.opened {
                    EndReason::Device
                } else {
                    EndReason::Refused
                };
                return Some(Ending {
                    reason,
                    status: Some(exit_status(&close)),
                    tell_device: None,
                });
            }
        }
        None
    }
}

fn to_protocol_size(s: crate::stream_protocols::remote_command::TerminalSize) -> TerminalSize {
    TerminalSize {
        width: s.width,
        height: s.height,
    }
}

/// Ends the client's streams: output closed, the status on the error stream, our
/// halves of stdin and resize closed.
fn finish_streams<IO: AsyncRead + AsyncWrite>(
    conn: &mut SpdyConnection<IO>,
    all: ExecStreams,
    status: &ExitStatus,
) {
    for id in [all.stdout, all.stderr].into_iter().flatten() {
        let _ = conn.session.close_stream(id);
    }
    let _ = conn
        .session
        .send_data(all.error, &status_json(status), true);
    for id in [all.stdin, all.resize].into_iter().flatten() {
        let _ = conn.session.close_stream(id);
    }
}
